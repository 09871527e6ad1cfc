import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import yaml

from trainlab.errors import UsageError
from trainlab.evaluation.plots import save_figure
from trainlab.tools.compare import (
    F1,
    RUN,
    SEEDS,
    TEST_ACC,
    TIME,
    VAL_ACC,
    MeanStd,
    compare_table,
    curves_figure,
    differing_fields,
    find_runs,
    group_rows,
    load_run,
    render,
)

BASE_CONFIG = {
    "name": None,
    "seed": 0,
    "epochs": 3,
    "output_dir": "runs",
    "progress": False,
    "data": {"name": "digits", "batch_size": 64},
    "model": {"name": "workshop_cnn", "channels": [4, 4, 8, 8]},
    "optimizer": {"name": "adam", "lr": 0.001},
}


def make_run(parent: Path, name: str, *, val_accs=(0.5, 0.7, 0.6), test_acc=0.65, f1=0.6, seconds=10.0,
             speeds=(1000.0, 3000.0, 2000.0), status="finished", **overrides) -> Path:
    """A run folder as `trainlab run` leaves it, with only config.yaml, run.json and metrics.csv.

    `overrides` set config keys, dotted with "__": optimizer__lr=0.01.
    """
    config = json.loads(json.dumps(BASE_CONFIG))
    config["progress"] = name.endswith("p")  # differs between runs, but is ignored
    for key, value in overrides.items():
        *sections, leaf = key.split("__")
        node = config
        for section in sections:
            node = node[section]
        node[leaf] = value
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = {"status": status, "name": name, "epochs_completed": len(val_accs), "best_val": max(val_accs),
           "monitor": "val/acc", "test_acc": test_acc, "test_macro_f1": f1, "train_seconds": seconds}
    (folder / "run.json").write_text(json.dumps(run))
    lines = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,samples_per_s"]
    for epoch, (acc, speed) in enumerate(zip(val_accs, speeds), start=1):
        lines.append(f"{epoch},1.0,0.5,{2.0 - acc},{acc},0.001,1.0,{speed}")
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Two learning rates over three seeds each, and one lone run with another model width."""
    runs = tmp_path / "runs"
    results = {  # (lr, seed) -> (best val acc, test acc, macro F1, seconds)
        (0.001, 0): (0.70, 0.68, 0.66, 10.0),
        (0.001, 1): (0.72, 0.70, 0.69, 12.0),
        (0.001, 2): (0.74, 0.69, 0.67, 11.0),
        (0.01, 0): (0.80, 0.78, 0.77, 9.0),
        (0.01, 1): (0.82, 0.79, 0.78, 9.0),
        (0.01, 2): (0.84, 0.83, 0.80, 12.0),
    }
    for (lr, seed), (val, test, f1, seconds) in results.items():
        make_run(runs, f"lr{lr}-s{seed}", val_accs=(val - 0.1, val), test_acc=test, f1=f1, seconds=seconds,
                 speeds=(100.0, 200.0), optimizer__lr=lr, seed=seed)
    make_run(runs, "wide-p", val_accs=(0.5, 0.9), test_acc=0.88, f1=0.87, seconds=30.0,
             speeds=(100.0, 200.0), model__channels=[8, 8, 16, 16])
    return runs


def load(runs: Path):
    return [load_run(path) for path in find_runs([str(runs)])]


# ---------------------------------------------------------------- finding and reading runs


def test_a_parent_folder_gives_its_run_folders_sorted(sweep):
    (sweep / "not-a-run").mkdir()
    (sweep / "notes.txt").write_text("hello")
    names = [path.name for path in find_runs([str(sweep)])]
    assert names == sorted(names) and len(names) == 7 and "not-a-run" not in names


def test_globs_and_run_folders_can_be_mixed_and_each_run_appears_once(sweep):
    found = find_runs([str(sweep / "lr0.01-*"), str(sweep / "wide-p"), str(sweep / "lr0.01-s0")])
    assert [path.name for path in found] == ["lr0.01-s0", "lr0.01-s1", "lr0.01-s2", "wide-p"]


def test_finding_no_runs_is_a_usage_error_naming_the_arguments(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no run folders found") as error:
        find_runs([str(tmp_path / "empty"), str(tmp_path / "nothing-*")])
    assert str(tmp_path / "empty") in str(error.value) and "nothing-*" in str(error.value)


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="typo"):
        find_runs([str(tmp_path / "typo")])


def test_load_run_summarises_the_three_files(tmp_path):
    path = make_run(tmp_path, "one", val_accs=(0.5, 0.7, 0.6), speeds=(1000.0, 3000.0, 2000.0), optimizer__lr=0.1)
    run = load_run(path)
    assert run.name == "one" and run.path == path and run.status == "finished"
    assert run.config["optimizer.lr"] == 0.1 and run.config["model.channels"] == [4, 4, 8, 8]
    assert run.best_val_acc == 0.7 and run.images_per_s == 2000.0
    assert run.test_acc == 0.65 and run.test_macro_f1 == 0.6 and run.train_seconds == 10.0
    assert run.epochs_completed == 3 and [row["epoch"] for row in run.history] == [1, 2, 3]


def test_load_run_tolerates_missing_and_broken_files(tmp_path):
    path = make_run(tmp_path, "broken")
    (path / "run.json").write_text("{not json")
    (path / "metrics.csv").unlink()
    run = load_run(path)
    assert run.name == "broken" and run.config["data.name"] == "digits"
    assert run.status is run.best_val_acc is run.test_acc is run.images_per_s is run.epochs_completed is None
    assert run.history == []


def test_a_folder_without_config_yaml_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="config.yaml"):
        load_run(tmp_path)


# ---------------------------------------------------------------- tables


def test_differing_fields_ignores_name_output_dir_and_progress(sweep):
    assert differing_fields(load(sweep)) == ["seed", "model.channels", "optimizer.lr"]


def test_a_key_missing_from_some_runs_counts_as_differing(tmp_path):
    make_run(tmp_path, "a")
    make_run(tmp_path, "b", model__dropout=0.1)
    assert differing_fields(load(tmp_path)) == ["model.dropout"]


def test_arguments_that_come_with_a_differing_name_are_not_columns(tmp_path):
    make_run(tmp_path, "linear", scheduler={"name": "linear", "end_ratio": 0.0})
    make_run(tmp_path, "cosine", scheduler={"name": "cosine", "min_lr_ratio": 0.0})
    assert differing_fields(load(tmp_path)) == ["scheduler.name"]
    make_run(tmp_path, "linear-to-a-tenth", scheduler={"name": "linear", "end_ratio": 0.1})
    assert differing_fields(load(tmp_path)) == ["scheduler.name", "scheduler.end_ratio"]


def test_compare_table_has_one_row_per_run_with_percentages(sweep):
    rows = compare_table(load(sweep))
    assert len(rows) == 7
    best = rows[0]
    assert best[RUN] == "wide-p" and best["model.channels"] == "[8, 8, 16, 16]"
    assert best[VAL_ACC] == pytest.approx(90.0) and best[TEST_ACC] == pytest.approx(88.0)
    assert best[F1] == pytest.approx(87.0) and best[TIME] == 30.0 and best["images/s"] == 150.0
    assert list(best)[:4] == [RUN, "seed", "model.channels", "optimizer.lr"]
    assert "status" not in best  # every run finished


def test_a_status_column_appears_when_some_run_did_not_finish(sweep):
    make_run(sweep, "crashed", status="failed", val_accs=(0.1,))
    rows = {row[RUN]: row for row in compare_table(load(sweep))}
    assert rows["crashed"]["status"] == "failed" and rows["wide-p"]["status"] == "finished"


@pytest.mark.parametrize(
    ("sort", "column", "descending"),
    [("val_acc", VAL_ACC, True), ("test_acc", TEST_ACC, True), ("f1", F1, True), ("time", TIME, False)],
)
def test_rows_sort_by_a_metric_best_first(sweep, sort, column, descending):
    values = [row[column] for row in compare_table(load(sweep), sort=sort)]
    assert values == sorted(values, reverse=descending)


def test_rows_sort_by_a_differing_config_field(sweep):
    rows = compare_table(load(sweep), sort="optimizer.lr")
    assert [row["optimizer.lr"] for row in rows] == [0.001] * 4 + [0.01] * 3


def test_an_unknown_sort_key_is_a_usage_error_listing_the_choices(sweep):
    with pytest.raises(UsageError) as error:
        compare_table(load(sweep), sort="val_accc")
    message = str(error.value)
    assert "did you mean 'val_acc'" in message and "test_acc" in message and "f1" in message and "time" in message


def test_seed_groups_give_mean_and_population_std(sweep):
    rows = group_rows(load(sweep))
    assert [row["optimizer.lr"] for row in rows] == [0.01, 0.001]  # best mean val acc first
    assert all(row[SEEDS] == "n=3 seeds" for row in rows)
    assert "seed" not in rows[0] and "wide-p" not in str(rows)  # the lone run is in no group
    small_lr = rows[1]
    tests = [68.0, 70.0, 69.0]
    assert small_lr[TEST_ACC].mean == pytest.approx(statistics.fmean(tests))
    assert small_lr[TEST_ACC].std == pytest.approx(statistics.pstdev(tests))
    assert small_lr[VAL_ACC].mean == pytest.approx(72.0) and small_lr[VAL_ACC].std == pytest.approx((8 / 3) ** 0.5)
    assert small_lr[TIME] == MeanStd(11.0, pytest.approx((2 / 3) ** 0.5), 3, 3)
    assert small_lr["epochs completed"] == 2


def test_seed_groups_leave_out_runs_that_did_not_finish(sweep):
    make_run(sweep, "lr0.001-s3-crashed", status="failed", val_accs=(0.1,), optimizer__lr=0.001, seed=3)
    rows = group_rows(load(sweep))
    assert [row[SEEDS] for row in rows] == ["n=3 seeds", "n=3 seeds"]
    assert rows[1][VAL_ACC].mean == pytest.approx(72.0)


def test_no_seed_groups_give_no_rows(tmp_path):
    make_run(tmp_path, "a")
    make_run(tmp_path, "b", optimizer__lr=0.1)
    assert group_rows(load(tmp_path)) == []


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "html"])
def test_every_format_names_every_run(sweep, fmt):
    runs = load(sweep)
    text = render(compare_table(runs), fmt)
    assert all(run.name in text for run in runs)
    assert "90.00" in text and "optimizer.lr" in text


def test_markdown_is_a_pipe_table_with_numbers_aligned_right(sweep):
    lines = render(compare_table(load(sweep)), "markdown").splitlines()
    assert len(lines) == 2 + 7 and all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert "---:" in lines[1] and lines[0].count("|") == lines[1].count("|") == lines[2].count("|")


def test_csv_reads_back(sweep):
    rows = list(csv.DictReader(io.StringIO(render(compare_table(load(sweep)), "csv"))))
    assert rows[0][RUN] == "wide-p" and rows[0][VAL_ACC] == "90.00" and rows[0]["model.channels"] == "[8, 8, 16, 16]"


def test_html_escapes_its_cells(tmp_path):
    make_run(tmp_path, "a<b>")
    make_run(tmp_path, "c", data__name="x&y")
    text = render(compare_table(load(tmp_path)), "html")
    assert "a&lt;b&gt;" in text and "x&amp;y" in text and "<b>" not in text
    assert text.count("<tr>") == 3


def test_group_rows_render_as_mean_plus_minus_std(sweep):
    text = render(group_rows(load(sweep)), "markdown")
    assert "n=3 seeds" in text
    assert "72.00 ± 1.63" in text  # best val acc of lr 0.001: 70, 72, 74


def test_an_unknown_format_is_a_usage_error(sweep):
    with pytest.raises(UsageError, match="markdown"):
        render(compare_table(load(sweep)), "latex")


# ---------------------------------------------------------------- curves


def test_curves_figure_draws_one_line_per_run_and_saves_a_png(sweep, tmp_path):
    runs = load(sweep)
    fig = curves_figure(runs)
    acc_ax, loss_ax = fig.axes
    assert len(acc_ax.lines) == len(loss_ax.lines) == len(runs)
    assert [text.get_text() for text in fig.legends[0].get_texts()] == [run.name for run in runs]
    path = tmp_path / "compare.png"
    save_figure(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
