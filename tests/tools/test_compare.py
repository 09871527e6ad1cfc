import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import yaml

from tests.test_cli import trainlab
from trainlab.errors import UsageError
from trainlab.evaluation.plots import save_figure
from trainlab.tools.compare import (
    EPOCHS,
    F1,
    RUN,
    SEEDS,
    SPEED,
    STATUS,
    TEST_ACC,
    TESTED,
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
             speeds=(1000.0, 3000.0, 2000.0), status="finished", tested="best", **overrides) -> Path:
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
           "best_epoch": 1 + val_accs.index(max(val_accs)), "monitor": "val/acc", "tested_checkpoint": tested,
           "test_acc": test_acc, "test_macro_f1": f1, "train_seconds": seconds}
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
    assert run.best_val_acc == 0.7 and run.samples_per_s == 2000.0
    assert run.test_acc == 0.65 and run.test_macro_f1 == 0.6 and run.train_seconds == 10.0
    assert run.epochs_completed == 3 and [row["epoch"] for row in run.history] == [1, 2, 3]


def test_load_run_tolerates_missing_and_broken_files(tmp_path):
    path = make_run(tmp_path, "broken")
    (path / "run.json").write_text("{not json")
    (path / "metrics.csv").unlink()
    run = load_run(path)
    assert run.name == "broken" and run.config["data.name"] == "digits"
    assert run.status is run.best_val_acc is run.test_acc is run.samples_per_s is run.epochs_completed is None
    assert run.history == []
    assert run.problems == [f"{path / 'run.json'}, line 1: not valid JSON, truncated or corrupt "
                            "(Expecting property name enclosed in double quotes)"]  # no metrics.csv yet is no problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, ": missing"),
        ("", ": empty"),
        ('{"status": "finished", "test_acc": 0.6', ", line 1: not valid JSON, truncated or corrupt ("),
        ('{"status": "finished",\n\x00\x00\x00', ", line 2: not valid JSON, truncated or corrupt ("),
        ("[1, 2]", ": expected a JSON object, got list"),
    ],
)
def test_a_missing_or_corrupt_run_json_marks_the_run_broken_naming_the_file(sweep, text, problem):
    path = sweep / "wide-p"
    if text is None:
        (path / "run.json").unlink()
    else:
        (path / "run.json").write_text(text)
    runs = load(sweep)
    broken = next(run for run in runs if run.path == path)
    assert len(broken.problems) == 1 and broken.problems[0].startswith(f"{path / 'run.json'}{problem}")
    assert all(not run.problems for run in runs if run is not broken)
    rows = {row[RUN]: row for row in compare_table(runs)}
    assert rows["wide-p"][STATUS] == "broken" and rows["wide-p"][TEST_ACC] is None
    assert rows["wide-p"][VAL_ACC] == pytest.approx(90.0)  # metrics.csv is fine: its columns stay
    assert rows["lr0.01-s0"][STATUS] == "finished" and rows["lr0.01-s0"][TEST_ACC] == pytest.approx(78.0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"epoch,train_loss,val_acc\n1,1.0,0.5\n2,1.0", ", line 3: 2 values for 3 columns, truncated or corrupt"),
        (b"epoch,train_loss,val_acc\n1,1.0,0.5\n2,1.0,0.6,7\n", ", line 3: 4 values for 3 columns, truncated or corrupt"),
        (b"epoch,train_loss,val_acc\n1,1.0,0.5x\n", ", line 2: val_acc is '0.5x', not a number"),
        (b"epoch,val_acc\n1,0.5\n\xff\xfe\x00", ": not UTF-8 text (byte 20)"),
        (b"epoch,train_loss\n1,1.0\n2,nan\n3,loss\n", ", line 4: train_loss is 'loss', not a number"),
        (b"<html>Bad Gateway</html>\n", ": no header row naming the columns (epoch, train_loss, ...)"),
        (b"", ": no header row naming the columns (epoch, train_loss, ...)"),
    ],
)
def test_a_corrupt_metrics_csv_marks_the_run_broken_naming_the_file_and_line(tmp_path, content, problem):
    path = make_run(tmp_path, "a", val_accs=(0.5, 0.7))
    make_run(tmp_path, "b", val_accs=(0.5, 0.8))
    (path / "metrics.csv").write_bytes(content)
    runs = load(tmp_path)
    assert runs[0].problems == [f"{path / 'metrics.csv'}{problem}"]
    assert runs[0].history == [] and not runs[1].problems
    rows = compare_table(runs)
    assert [row[STATUS] for row in rows] == ["finished", "broken"]
    assert rows[1][TEST_ACC] == pytest.approx(65.0) and rows[1][VAL_ACC] == pytest.approx(70.0)  # from run.json


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"model: {name: workshop_cnn\nseed: 0\n", ", line 2: not valid YAML ("),
        (b"seed: caf\xe9\n", ": not UTF-8 text (byte 9)"),
        (b"- a list\n", ": expected a mapping of config keys, got list"),
    ],
)
def test_a_corrupt_config_yaml_marks_the_run_broken_naming_the_file(tmp_path, content, problem):
    path = make_run(tmp_path, "a")
    make_run(tmp_path, "b")
    (path / "config.yaml").write_bytes(content)
    runs = load(tmp_path)
    assert len(runs[0].problems) == 1 and runs[0].problems[0].startswith(f"{path / 'config.yaml'}{problem}")
    assert runs[0].config == {} and runs[0].test_acc == 0.65 and runs[0].best_val_acc == 0.7  # the other files still count
    assert [row[STATUS] for row in compare_table(runs, sort="run")] == ["broken", "finished"]


def test_a_run_without_metrics_csv_yet_is_not_broken(tmp_path):
    path = make_run(tmp_path, "starting", status="running")
    (path / "metrics.csv").unlink()
    run = load_run(path)
    assert run.problems == [] and run.history == [] and run.status == "running"


def test_broken_runs_are_left_out_of_seed_groups(sweep):
    (sweep / "lr0.001-s2" / "metrics.csv").write_text("epoch,val_acc\n1,oops\n")
    rows = group_rows(load(sweep))
    assert [row[SEEDS] for row in rows] == ["n=3 seeds", "n=2 seeds"]


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
    assert best[F1] == pytest.approx(87.0) and best[TIME] == 30.0 and best[SPEED] == 150.0
    assert list(best)[:4] == [RUN, "seed", "model.channels", "optimizer.lr"]
    assert "status" not in best  # every run finished


def test_tested_says_which_checkpoint_and_epoch_each_test_result_is_of(tmp_path):
    make_run(tmp_path, "best", val_accs=(0.5, 0.7, 0.6))
    make_run(tmp_path, "last", val_accs=(0.5, 0.7, 0.6), tested="last")
    untested = make_run(tmp_path, "untested", test_acc=None)
    explicit = make_run(tmp_path, "explicit")
    record = json.loads((explicit / "run.json").read_text())
    (explicit / "run.json").write_text(json.dumps(record | {"tested_epoch": 3}))
    rows = {row[RUN]: row for row in compare_table(load(tmp_path))}
    assert rows["best"][TESTED] == "best@2" and rows["last"][TESTED] == "last@3"
    assert rows["explicit"][TESTED] == "best@3" and rows[untested.name][TESTED] is None
    assert list(rows["best"]).index(TESTED) == list(rows["best"]).index(TEST_ACC) - 1
    assert "best@2" in render(list(rows.values()), "table")


def test_the_compare_command_warns_once_per_broken_run_and_shows_the_others(tmp_path):
    make_run(tmp_path, "fine")
    broken = make_run(tmp_path, "cut")
    (broken / "run.json").write_text('{"status": "fini')
    result = trainlab("compare", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning:") == 1 and f"{broken / 'run.json'}, line 1: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith(("fine", "cut"))}
    assert "broken" in lines["cut"] and "finished" in lines["fine"] and "65.00" in lines["fine"]
    (tmp_path / "fine" / "metrics.csv").write_text("epoch,val_acc\n1,oops\n")
    result = trainlab("compare", str(tmp_path))
    assert result.returncode == 1 and result.stderr.count("warning:") == 2, result.stderr  # nothing left to compare


def test_a_status_column_appears_when_some_run_did_not_finish(sweep):
    make_run(sweep, "crashed", status="failed", val_accs=(0.1,))
    rows = {row[RUN]: row for row in compare_table(load(sweep))}
    assert rows["crashed"]["status"] == "failed" and rows["wide-p"]["status"] == "finished"


@pytest.mark.parametrize(
    ("sort", "column", "descending"),
    [("best_val_acc", VAL_ACC, True), ("test_acc", TEST_ACC, True), ("test_macro_f1", F1, True),
     ("train_seconds", TIME, False), ("samples_per_s", SPEED, True), ("epochs_completed", EPOCHS, True)],
)
def test_rows_sort_by_a_metric_best_first(sweep, sort, column, descending):
    values = [row[column] for row in compare_table(load(sweep), sort=sort)]
    assert values == sorted(values, reverse=descending)


def test_columns_and_sort_keys_are_the_metric_names_of_metrics_csv_and_run_json(sweep):
    assert [VAL_ACC, TEST_ACC, F1, TIME, SPEED, EPOCHS] == [
        "best_val_acc (%)", "test_acc (%)", "test_macro_f1 (%)", "train_seconds", "samples_per_s", "epochs_completed"]
    assert json.loads((sweep / "wide-p" / "run.json").read_text()).keys() >= {"test_acc", "test_macro_f1", "train_seconds"}
    runs = load(sweep)
    for new, old in [("best_val_acc", "val_acc"), ("test_macro_f1", "f1"), ("train_seconds", "time"),
                     ("samples_per_s", "images_per_s"), ("epochs_completed", "epochs"), ("run", "name")]:
        assert compare_table(runs, sort=new) == compare_table(runs, sort=old), old  # the earlier spellings still sort


def test_rows_sort_by_a_differing_config_field(sweep):
    rows = compare_table(load(sweep), sort="optimizer.lr")
    assert [row["optimizer.lr"] for row in rows] == [0.001] * 4 + [0.01] * 3


def test_an_unknown_sort_key_is_a_usage_error_listing_the_choices(sweep):
    with pytest.raises(UsageError) as error:
        compare_table(load(sweep), sort="best_val_accc")
    message = str(error.value)
    assert "did you mean 'best_val_acc'" in message
    assert "test_acc" in message and "test_macro_f1" in message and "train_seconds" in message


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
    assert small_lr[EPOCHS] == 2


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
