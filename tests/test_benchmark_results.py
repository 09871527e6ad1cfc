"""The benchmarks' result files: written whole, and one preset's seeds gathered from runs made at different times."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import common, presets


@pytest.fixture
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setattr(common, "RESULTS", folder)
    return folder


def test_save_writes_the_file_whole_and_leaves_no_partial_file(results):
    path = common.save("preset-x", {"rows": [1, 2]})
    assert json.loads(path.read_text())["rows"] == [1, 2]
    assert [p.name for p in results.iterdir()] == ["preset-x.json"]


def test_add_keeps_the_rows_of_seeds_not_run_again(results):
    row = lambda seed: {"seed": seed, "test acc": 0.9}  # noqa: E731
    common.save("preset-x", {"overrides": ["epochs=2"], "rows": [row(0), row(1)], "run_folders": "/tmp/a"})
    machine = json.loads((results / "preset-x.json").read_text())["environment"]["cpu"]
    earlier = presets.earlier_runs("preset-x", [1, 2], ["epochs=2"])
    assert earlier["rows"] == [{**row(0), "cpu": machine}]  # seed 1 is run again: its new row replaces the old one
    assert earlier["run_folders"] == ["/tmp/a"] and len(earlier["commands"]) == 1
    assert [e["cpu"] for e in earlier["environments"]] == [machine]  # each row keeps the machine it ran on
    assert presets.earlier_runs("preset-y", [0], [])["rows"] == []  # no file yet


def test_add_refuses_a_file_made_with_other_overrides(results):
    common.save("preset-x", {"overrides": ["epochs=2"], "rows": [{"seed": 0}], "run_folders": "/tmp/a"})
    with pytest.raises(SystemExit, match="epochs=2"):
        presets.earlier_runs("preset-x", [1], ["epochs=3"])


def test_time_to_accuracy_curves_are_a_text_picture_drawn_the_same_each_time(tmp_path):
    from benchmarks.time_to_accuracy import draw

    runs = [{"preset": preset, "seed": seed, "curve": [(30.0 * e, 0.5 + 0.04 * e + 0.01 * seed) for e in range(1, 11)]}
            for preset in ("cifar10/fast", "workshop/task4") for seed in (0, 1)]  # fmt: skip
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    draw(runs, first, "2 cores of Some CPU")
    draw(runs, second, "2 cores of Some CPU")
    svg = first.read_text()
    assert svg.startswith("<?xml") and "cifar10/fast" in svg and "workshop/task4" in svg and "Some CPU" in svg
    assert not list(tmp_path.glob("*.partial"))  # written whole: no partial file left behind
    assert svg.count("cifar10/fast") == 1  # one legend entry per preset, not per seed
    assert first.read_bytes() == second.read_bytes()  # a redraw changes nothing in the tracked file


def test_seeds_from_two_machines_are_scored_together_and_timed_apart():
    rows = [{"seed": 1, "test acc": 0.92, "macro F1": 0.91, "wall s": 400.0, "cpu": "Intel"},
            {"seed": 0, "test acc": 0.94, "macro F1": 0.93, "wall s": 300.0, "cpu": "AMD"},
            {"seed": 2, "test acc": 0.93, "macro F1": 0.92, "wall s": 500.0, "cpu": "Intel"}]  # fmt: skip
    summary = presets.summarize(rows)
    assert summary["seeds"] == [0, 1, 2] and summary["test_acc_mean"] == pytest.approx(0.93)
    assert summary["wall_s_by_cpu"] == {"AMD": {"runs": 1, "mean": 300.0, "max": 300.0},
                                        "Intel": {"runs": 2, "mean": 450.0, "max": 500.0}}  # fmt: skip
    assert "450 s per run on Intel" in presets.wall_times(summary)


def test_time_to_accuracy_add_keeps_the_other_runs_and_refuses_other_overrides(results):
    from benchmarks.time_to_accuracy import earlier_runs

    runs = [{"preset": preset, "seed": seed} for preset in ("a", "b") for seed in (0, 1)]
    common.save("tta", {"overrides": [], "runs": runs})
    assert earlier_runs("tta", [], ["a"], [1]) == [runs[0], runs[2], runs[3]]  # a's seed 1 runs again
    assert earlier_runs("none-yet", [], ["a"], [0]) == []
    with pytest.raises(SystemExit, match=r"--set \(nothing\), not epochs=4"):
        earlier_runs("tta", ["epochs=4"], ["a"], [0])


def test_add_refuses_a_file_whose_preset_has_changed_since(results):
    config = {"epochs": 6, "model": {"name": "efficientnet_lite0", "input_size": 128}}
    common.save("preset-x", {"overrides": [], "config": config, "rows": [{"seed": 0}], "run_folders": "/tmp/a"})
    assert presets.earlier_runs("preset-x", [1], [], config)["rows"]  # the same experiment: seed 0 is kept
    with pytest.raises(SystemExit, match="made with epochs: 6, but the preset now gives epochs: 8"):
        presets.earlier_runs("preset-x", [1], [], {**config, "epochs": 8})
    with pytest.raises(SystemExit, match="model.input_size: 128, but the preset now gives model.input_size: 160"):
        presets.earlier_runs("preset-x", [1], [], {**config, "model": {"name": "efficientnet_lite0", "input_size": 160}})
    assert presets.earlier_runs("preset-x", [1], [], {**config, "tta": "flip"})["rows"]  # a field trainlab gained since


def test_time_to_accuracy_add_refuses_a_run_whose_preset_has_changed_since(results):
    from benchmarks.time_to_accuracy import earlier_runs

    config = {"epochs": 10, "model": {"name": "resnet_fast"}}
    runs = [{"preset": "a", "seed": 0, "config": config}, {"preset": "b", "seed": 0, "config": config},
            {"preset": "b", "seed": 1}]  # fmt: skip  (b's seed 1 ran before the runs recorded their config)
    common.save("tta", {"overrides": [], "runs": runs})
    now = {"a": config, "b": config}
    assert earlier_runs("tta", [], ["a"], [1], lambda preset, overrides: now[preset]) == runs
    now["b"] = {**config, "epochs": 12}
    with pytest.raises(SystemExit, match="made with epochs: 10, but b now gives epochs: 12"):
        earlier_runs("tta", [], ["a"], [1], lambda preset, overrides: now[preset])
    assert earlier_runs("tta", [], ["b"], [0], lambda preset, overrides: now[preset]) == [runs[0], runs[2]]  # b runs again


def test_retest_evaluates_each_seeds_run_once_with_the_overrides_and_scores_the_seeds(results, tmp_path, isolated):
    from benchmarks import retest
    from tests.conftest import TINY
    from trainlab.config import load_config
    from trainlab.experiment import run_experiment

    runs = tmp_path / "runs"
    for seed in (0, 1):
        config, source = load_config(None, [*TINY, f"seed={seed}", f"output_dir={runs}", "precision=fp32"])
        run_experiment(config, source)
    recorded = {seed: json.loads((run / "run.json").read_text())["test_acc"] for seed, run in retest.runs_by_seed({"run_folders": str(runs)}).items()}
    rows = [{"seed": seed, "test acc": acc} for seed, acc in recorded.items()]
    common.save("preset-tiny", {"preset": "tiny", "overrides": [], "rows": rows, "run_folders": [str(runs)]})

    summary = retest.retest("preset-tiny", ["tta=flip"])
    assert [r["seed"] for r in summary["rows"]] == [0, 1]
    for row in summary["rows"]:
        (evaluation,) = retest.evaluations(Path(row["run"]))
        assert evaluation["tta"] == "flip" and row["retest acc"] == evaluation["test_acc"]
        assert row["recorded acc"] == recorded[row["seed"]]
    assert summary["retest_acc_mean"] == pytest.approx(sum(r["retest acc"] for r in summary["rows"]) / 2)
    assert json.loads((results / "preset-tiny-retest-tta-flip.json").read_text())["eval_overrides"] == ["tta=flip"]

    again = retest.retest("preset-tiny", ["tta=flip"])  # the evaluations are there: nothing is tested twice
    assert [r["eval s"] for r in again["rows"]] == [None, None] and again["rows"] == [{**r, "eval s": None} for r in summary["rows"]]
    assert all(len(retest.evaluations(Path(r["run"]))) == 1 for r in again["rows"])
    shutil.rmtree(summary["rows"][1]["run"])
    with pytest.raises(SystemExit, match="seed 1's run folder is gone"):
        retest.retest("preset-tiny", ["tta=flip"])
