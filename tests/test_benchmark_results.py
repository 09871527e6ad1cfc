"""The benchmarks' result files: written whole, and one preset's seeds gathered from runs made at different times."""

import json

import pytest

from benchmarks import common, presets


@pytest.fixture
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setattr(common, "RESULTS", folder)
    monkeypatch.setattr(presets, "RESULTS", folder)
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
