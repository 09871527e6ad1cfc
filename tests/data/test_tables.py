"""Tables: CSV, TSV and Parquet files read, checked and encoded from the training rows alone, and a table run that
trains, predicts and evaluates from its folder."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

import trainlab
from tests.test_cli import assert_user_error, trainlab as cli
from trainlab.data import DATASETS, prepare
from trainlab.data.preprocess import load_preprocess
from trainlab.data.table_encoding import TablePreprocess
from trainlab.data.table_files import numbered
from trainlab.data.table_loader import TableData, TableLoader
from trainlab.errors import ConfigError, DataWarning, UsageError


def houses(rows=40, seed=0):
    """A small table: numbers, a text column, an integer column with few values, a class and a value target."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "area": rng.normal(100, 30, rows).round(1), "city": rng.choice(["lyon", "nice", "paris"], rows),
        "rooms": rng.integers(1, 5, rows), "kind": rng.choice(["flat", "house"], rows),
        "price": rng.normal(300, 50, rows).round(2),
    })  # fmt: skip


def write(frame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    return str(path)


def prepared(dataset, val_size=0.25):
    return prepare(dataset, batch_size=8, eval_batch_size=16, val_size=val_size, split_seed=0, seed=0,
                   device=torch.device("cpu"), channels_last=False)  # fmt: skip


def test_numbers_are_standardised_with_the_training_rows_statistics_which_preprocess_json_keeps(tmp_path):
    path = write(houses(), tmp_path / "houses.csv")
    data = prepared(DATASETS.build("csv", path=path, target="kind"))
    assert isinstance(data, TableData) and data.sizes == {"train": 24, "val": 8, "test": 8}
    train_rows = data.train.rows
    mean, std = data.preprocess.numeric["area"]
    assert mean == pytest.approx(train_rows["area"].mean()) and std == pytest.approx(train_rows["area"].std(ddof=0))
    area = data.preprocess.columns.index("area")
    assert data.train.features[:, area].mean().item() == pytest.approx(0, abs=1e-5), "zero mean on the training rows"
    assert data.test.features[:, area].mean().item() != pytest.approx(0, abs=1e-3), "not refitted on the test rows"

    data.preprocess.save(tmp_path)
    loaded = load_preprocess(tmp_path)
    record = json.loads((tmp_path / "preprocess.json").read_text())
    assert isinstance(loaded, TablePreprocess) and record["kind"] == "table" and record["target_kind"] == "classes"
    assert record["classes"] == ["flat", "house"] and record["targets"] == ["kind"] and record["in_features"] == 6
    assert loaded.model_inputs() == {"in_features": 6, "num_classes": 2, "num_outputs": 2}
    assert torch.equal(loaded.encode(pd.read_csv(path)), data.preprocess.encode([path]))
    assert torch.equal(loaded.encode_frame(data.test.rows, "test"), data.test.features)
    assert loaded.example().shape == (6,) and data.example().shape == (6,)


def test_text_columns_are_one_hot_over_the_training_categories_and_an_unseen_one_is_zeros_with_one_warning(tmp_path):
    data = prepared(DATASETS.build("csv", path=write(houses(), tmp_path / "houses.csv"), target="kind"))
    preprocess = data.preprocess
    assert preprocess.columns == ["area", "city=lyon", "city=nice", "city=paris", "rooms", "price"]
    assert preprocess.categories == {"city": ["lyon", "nice", "paris"]}, "rooms: an integer column stays a number"
    rows = [{"area": 100, "city": "nice", "rooms": 2, "price": 300}, {"area": 100, "city": "brest", "rooms": 2, "price": 1},
            {"area": 100, "city": "brest", "rooms": 2, "price": 2}]  # fmt: skip
    with pytest.warns(DataWarning) as caught:
        encoded = preprocess.encode(rows)
    assert encoded.dtype == torch.float32 and encoded.shape == (3, 6)
    assert encoded[0, 1:4].tolist() == [0, 1, 0] and encoded[1, 1:4].tolist() == [0, 0, 0]
    assert len(caught) == 1 and "column 'city' holds 'brest'" in str(caught[0].message) and "2 of 3 rows" in str(caught[0].message)


def test_missing_values_are_one_error_listing_every_column_and_its_rows(tmp_path):
    frame = houses()
    frame.loc[[2, 5, 9], "area"] = np.nan
    frame.loc[4, "city"] = None
    with pytest.raises(UsageError) as error:
        DATASETS.build("csv", path=write(frame, tmp_path / "houses.csv"), target="kind")
    assert str(error.value).endswith("houses.csv: missing values in 2 columns: area (3 rows), city (1 row); "
                                     "set data.missing: drop or fill")  # fmt: skip
    assert error.value.exit_code == 2


def test_missing_drop_leaves_the_rows_out_and_fill_puts_the_training_mean_and_a_missing_category(tmp_path):
    frame = houses()
    frame.loc[[2, 5, 9], "area"] = np.nan
    frame.loc[4, "city"] = None
    frame.loc[7, "kind"] = None  # a row without a target is left out by both
    path = write(frame, tmp_path / "houses.csv")
    with pytest.warns(DataWarning, match="5 rows with empty cells left out"):
        dropped = DATASETS.build("csv", path=path, target="kind", missing="drop")
    assert len(dropped.train) + len(dropped.test) == 35 and dropped.dropped == {path: 5}

    with pytest.warns(DataWarning, match="1 row with no target left out"):
        filled = DATASETS.build("csv", path=path, target="kind", missing="fill")
    data = prepared(filled)
    assert "city=missing" in data.preprocess.columns and len(data.train.rows) + len(data.val.rows) + len(data.test.rows) == 39
    rows = pd.concat([data.train.rows, data.val.rows, data.test.rows])
    area = data.preprocess.columns.index("area")
    for loader in (data.train, data.val, data.test):
        empty = torch.from_numpy(loader.rows["area"].isna().to_numpy())
        assert torch.all(loader.features[empty, area] == 0), "the training mean, standardised"
    assert rows["area"].isna().sum() == 3
    assert json.loads(json.dumps(data.stats))["missing"]["empty_cells"][path] == {"area": 3, "city": 1, "kind": 1}


def test_a_target_that_is_not_there_lists_the_columns_with_a_suggestion(tmp_path):
    path = write(houses(), tmp_path / "houses.csv")
    with pytest.raises(UsageError, match=r"houses.csv: no target column 'prise' \(did you mean 'price'\?\); "
                                         r"its columns: area, city, rooms, kind, price"):  # fmt: skip
        DATASETS.build("csv", path=path, target="prise")
    with pytest.raises(UsageError, match="no data.drop column 'zip'"):
        DATASETS.build("csv", path=path, target="kind", drop=["zip"])


@pytest.mark.parametrize(("column", "message"), [
    ([f"owner {i}" for i in range(40)], "column 'note' has 40 distinct values in 40 rows: an identifier or free text"),
    ([str(i) for i in range(39)] + ["unknown"], "column 'note' mixes numbers and text: 'unknown' in row 40;"),
])  # fmt: skip
def test_a_column_that_cannot_be_encoded_is_refused_with_advice_to_drop_it(tmp_path, column, message):
    path = write(houses().assign(note=column), tmp_path / "houses.csv")
    with pytest.raises(UsageError, match=message) as error:
        DATASETS.build("csv", path=path, target="kind")
    assert "houses.csv" in str(error.value) and "data.drop" in str(error.value)
    assert DATASETS.build("csv", path=path, target="kind", drop=["note"]).features == ["area", "city", "rooms", "price"]


def test_several_target_columns_are_float32_values_n_by_t(tmp_path):
    dataset = DATASETS.build("csv", path=write(houses(), tmp_path / "houses.csv"), target=["price", "area"])
    data = prepared(dataset)
    assert data.preprocess.target_kind == "values" and data.classes == []
    assert data.preprocess.model_inputs() == {"in_features": 6, "num_classes": 2, "num_outputs": 2}
    features, targets = next(iter(data.train))
    assert features.dtype == targets.dtype == torch.float32 and targets.shape == (8, 2)
    assert torch.equal(data.test.labels, torch.tensor(dataset.test[["price", "area"]].to_numpy(), dtype=torch.float32))
    single = DATASETS.build("csv", path=str(tmp_path / "houses.csv"), target="price")
    assert single.kind == "values" and prepared(single).test.labels.shape == (8, 1)


def test_tsv_and_parquet_read_as_csv_does_and_a_test_file_gets_the_training_encoding(tmp_path):
    frame = houses()
    csv = DATASETS.build("csv", path=write(frame, tmp_path / "h.csv"), target="kind")
    for suffix in (".tsv", ".parquet"):
        other = DATASETS.build("csv", path=write(frame, tmp_path / f"h{suffix}"), target="kind")
        pd.testing.assert_frame_equal(other.train, csv.train)
    split = DATASETS.build("csv", path=write(frame[:30], tmp_path / "train.csv"), test=write(frame[30:], tmp_path / "test.tsv"),
                           target="kind")  # fmt: skip
    assert len(split.train) == 30 and len(split.test) == 10 and split.test.index[0] == 1, "rows numbered in their own file"
    assert split.files == {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.tsv")}


def test_the_test_rows_are_the_same_in_every_run_and_a_test_class_the_training_rows_lack_names_file_and_row(tmp_path):
    path = write(houses(), tmp_path / "houses.csv")
    first, again = (DATASETS.build("csv", path=path, target="kind") for _ in range(2))
    assert first.test.index.tolist() == again.test.index.tolist() and len(first.test) == 8
    assert first.test["kind"].value_counts().min() >= 3, "stratified by class"
    other = DATASETS.build("csv", path=path, target="kind", test_split_seed=1)
    assert other.test.index.tolist() != first.test.index.tolist()
    only_test = DATASETS.build("csv", path=path, target="kind", test_only=True)
    assert only_test.train is None and only_test.test.index.tolist() == first.test.index.tolist()

    test = write(houses(5, seed=1).assign(kind=["flat", "house", "flat", "castle", "flat"]), tmp_path / "test.csv")
    with pytest.raises(UsageError, match=r"test.csv, row 4: class 'castle' of column 'kind' is not among the training "
                                         r"rows' classes \(flat, house\)"):  # fmt: skip
        DATASETS.build("csv", path=path, test=test, target="kind")


def test_a_target_of_whole_numbers_with_few_values_is_classes_in_numeric_order(tmp_path):
    frame = houses().assign(grade=np.tile([1, 2, 10], 14)[:40])
    dataset = DATASETS.build("csv", path=write(frame, tmp_path / "h.csv"), target="grade")
    assert dataset.kind == "classes" and dataset.classes == ["1", "2", "10"]
    assert dataset.categorical == ["city", "kind"]


def test_scikit_learns_tables_are_read_offline():
    iris = DATASETS.build("sklearn_table", table="iris")
    assert iris.classes == ["setosa", "versicolor", "virginica"] and len(iris.train) == 120 and len(iris.test) == 30
    diabetes = DATASETS.build("sklearn_table", table="diabetes")
    assert diabetes.kind == "values" and diabetes.target == ["target"] and len(diabetes.features) == 10


def test_a_url_is_read_only_with_its_sha256_and_from_the_cache_once_fetched(tmp_path):
    url = "https://example.org/data/houses.csv"
    with pytest.raises(UsageError, match="set data.sha256"):
        DATASETS.build("csv", path=url, target="kind")
    content = houses().to_csv(index=False).encode()
    cached = tmp_path / "cache" / "tables" / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-houses.csv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    dataset = DATASETS.build("csv", path=url, target="kind", sha256=hashlib.sha256(content).hexdigest())
    assert dataset.files["train"] == url and len(dataset.train) == 32


def test_augmentation_of_a_table_is_a_config_error(tmp_path):
    dataset = DATASETS.build("csv", path=write(houses(), tmp_path / "houses.csv"), target="kind")
    with pytest.raises(ConfigError, match="augment.* transforms images; dataset 'csv' is a table"):
        prepare(dataset, batch_size=8, eval_batch_size=8, val_size=0.2, split_seed=0, seed=0, device=torch.device("cpu"),
                channels_last=False, augment=lambda x, g: x, name="csv")  # fmt: skip


def test_training_batches_are_shuffled_by_seed_and_epoch():
    loader = TableLoader(torch.arange(10.0)[:, None], torch.arange(10), 4, shuffle=True, seed=3,
                         rows=numbered(pd.DataFrame({"x": range(10)})))  # fmt: skip
    first = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(10)) and torch.equal(first, torch.cat([y for _, y in loader]))
    loader.set_epoch(1)
    assert not torch.equal(first, torch.cat([y for _, y in loader])) and len(loader) == 3
    assert loader.examples([0, 9]) == ["row 1: x=0", "row 10: x=9"]


def test_a_table_run_trains_predicts_and_evaluates_from_its_folder(tmp_path, isolated):
    rng = np.random.default_rng(0)
    x = rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], 200) + rng.normal(0, 0.1, 200)
    frame = pd.DataFrame({"x": x.round(3), "colour": rng.choice(["red", "blue"], 200), "kind": np.where(x > 0, "big", "small")})
    path = write(frame, tmp_path / "separable.csv")
    run = trainlab.run(None, data={"name": "csv", "path": path, "target": "kind", "batch_size": 16}, model={"name": "table_mlp"},
                       optimizer={"lr": 0.01}, epochs=3, output_dir=str(tmp_path / "runs"), progress=False, quiet=True)  # fmt: skip
    assert run.record["test_acc"] >= 0.95 and run.record["num_classes"] == 2
    data = json.loads((run.path / "data.json").read_text())
    assert data["columns"][1] == {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]}
    assert "text" in json.loads((run.path / "mistakes.json").read_text())["examples"][0]

    expected = ["big" if v > 0 else "small" for v in frame["x"][:4]]
    assert [top[0][0] for top in run.predict(frame[:4].to_dict("records"))] == expected
    rows = write(frame[:4].drop(columns="kind"), isolated / "rows.csv")
    assert [top[0][0] for top in run.predict([rows])] == expected
    assert run.predictor().predict(frame[:4]).argmax(1).tolist() == [0 if e == "big" else 1 for e in expected]

    result = cli("predict", str(run.path), "rows.csv", "--top", "1")  # each row an input, named FILE:ROW
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [[f"rows.csv:{i}", e] for i, e in enumerate(expected, 1)]
    result = cli("eval", str(run.path))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and len(json.loads((run.path / "run.json").read_text())["evaluations"]) == 1
    assert_user_error(cli("predict", str(run.path), write(frame[["colour"]], tmp_path / "bad.csv")), 2,
                      "bad.csv: no feature column 'x'")  # fmt: skip
