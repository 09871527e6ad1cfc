"""Time to 80 / 85 / 90 / 94 % CIFAR-10 test accuracy on this machine, for the fast recipe, the workshop CNN (Task 4)
and the pre-activation ResNet preset, and the curves (test accuracy against wall time) in one picture.

    TRAINLAB_DATA=/path/to/data python -m benchmarks.time_to_accuracy --seeds 0 1 2
    TRAINLAB_DATA=/path/to/data python -m benchmarks.time_to_accuracy --presets cifar10/fast --seeds 1 2 --add
    TRAINLAB_DATA=/path/to/data python -m benchmarks.time_to_accuracy --presets cifar10/fast --seeds 0 --set epochs=2 --name time_to_accuracy-2-epochs

Each run is `trainlab.run`-like (run_experiment, a run folder, the preset's own validation) with one extra callback
that tests the weights after every epoch; the clock starts before the config is read (data loading counts) and
stops for those extra tests, so the times are those of the run alone. A point of the curve is the time to the end of
that epoch plus one test: what a run stopped there would have taken. A threshold a run never reaches is "-".
Results: benchmarks/results/NAME.json and the curves NAME.svg (NAME: `--name`, time_to_accuracy by default; SVG is text,
so the README shows the tracked picture); `--add` keeps the runs already in NAME.json (made with the same `--set`) and
adds these, so seeds can be run a few at a time, and refuses if a preset no longer gives the config a run recorded;
each run records its CPU too. `--draw` only draws NAME.json again. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, earlier_results, experiment_of, refuse_a_changed_preset, save, table

PRESETS = ("cifar10/fast", "workshop/task4", "cifar10/preact_resnet")
THRESHOLDS = (0.80, 0.85, 0.90, 0.94)


def make_test_curve(config, started: float):
    from trainlab.build import load_data
    from trainlab.engine.loop import Callback

    class TestCurve(Callback):
        """(seconds of the run so far, test accuracy) after every epoch; its own time is left out of the clock."""

        def __init__(self):
            self.points: list[tuple[float, float]] = []
            self.excluded = 0.0

        def on_fit_start(self, trainer) -> None:
            begun = time.perf_counter()
            self.test = load_data(config).test  # the same split and statistics as the run's (same seed)
            self.excluded += time.perf_counter() - begun

        def on_epoch_end(self, trainer) -> None:
            begun = time.perf_counter()
            accuracy = trainer.evaluate(self.test)["acc"]
            testing = time.perf_counter() - begun  # a run that stopped here would spend it once
            self.points.append((begun - started - self.excluded + testing, accuracy))
            self.excluded += testing

    return TestCurve()


def one_run(preset: str, seed: int, overrides: list[str]) -> dict:
    from rich.console import Console

    from trainlab.config import load_config
    from trainlab.experiment import run_experiment
    from trainlab.utils.machine import cpu_name

    started = time.perf_counter()
    config, source = load_config(preset, [f"seed={seed}", "progress=false", f"output_dir={tempfile.mkdtemp()}", *overrides])
    curve = make_test_curve(config, started)
    folder = run_experiment(config, source, console=Console(quiet=True), extra_callbacks=[curve])
    wall = time.perf_counter() - started - curve.excluded
    record = folder.read_run()
    reached = {f"{t:.0%}": next((s for s, acc in curve.points if acc >= t), None) for t in THRESHOLDS}
    return {"preset": preset, "seed": seed, "curve": curve.points, "final_test_acc": record["test_acc"],
            "wall_seconds": wall, "time_to": reached, "cpu": cpu_name(), "config": experiment_of(config)}  # fmt: skip


def earlier_runs(name: str, overrides: list[str], presets: list[str], seeds: list[int], experiment=None) -> list[dict]:
    """The runs of results file NAME made earlier with the same overrides; those about to run again are dropped. A run
    that recorded its config must have the one its preset gives now (`experiment(preset, overrides)`), or its curve
    measures another experiment: refused."""
    earlier = earlier_results(name, overrides) or {"runs": []}
    kept = [r for r in earlier["runs"] if not (r["preset"] in presets and r["seed"] in seeds)]
    experiment, now = experiment or current_experiment, {}
    for run in [r for r in kept if "config" in r]:  # runs from before the runs recorded their config are kept unchecked
        now.setdefault(run["preset"], experiment(run["preset"], overrides))
        refuse_a_changed_preset(name, run["config"], now[run["preset"]], run["preset"])
    return kept


def current_experiment(preset: str, overrides: list[str]) -> dict:
    from trainlab.config import load_config

    return experiment_of(load_config(preset, overrides)[0])


def machine(record: dict) -> str:
    """'2 cores of CPU NAME', from a results file's environment."""
    environment = record["environment"]
    return f"{environment['cpu_count']} cores of {environment['cpu']}"


def draw(results: list[dict], path: Path, machine: str) -> None:
    """The curves into the SVG file `path` (written whole); text stays text and a redraw gives the same bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainlab.utils.io import atomic_path

    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "trainlab"}):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        colours = {}
        for result in results:
            colour = colours.setdefault(result["preset"], f"C{len(colours)}")
            seconds, accuracy = zip(*result["curve"]) if result["curve"] else ((), ())
            first_seed = min(r["seed"] for r in results if r["preset"] == result["preset"])
            label = result["preset"] if result["seed"] == first_seed else None
            axes.plot([s / 60 for s in seconds], accuracy, marker="o", markersize=3, color=colour, label=label, alpha=0.8)
        for threshold in THRESHOLDS:
            axes.axhline(threshold, color="grey", linewidth=0.5, linestyle=":")
        axes.set(xlabel=f"wall time on {machine} (minutes)", ylabel="CIFAR-10 test accuracy", ylim=(0.4, 1.0))
        axes.legend(loc="lower right")
        figure.tight_layout()
        with atomic_path(path) as partial:
            figure.savefig(partial, format="svg", metadata={"Date": None})
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="config fields for every run, e.g. --set epochs=4")
    parser.add_argument("--name", default="time_to_accuracy", help="results file stem in benchmarks/results/")
    parser.add_argument("--add", action="store_true", help="keep the runs already in NAME.json and add these")
    parser.add_argument("--draw", action="store_true", help="run nothing: draw NAME.json's curves into NAME.svg")
    args = parser.parse_args()
    if args.draw:
        source = RESULTS / f"{args.name}.json"
        if not source.is_file():
            raise SystemExit(f"--draw: there is no {source} to draw; run the benchmark first")
        recorded = json.loads(source.read_text())
        draw(recorded["runs"], RESULTS / f"{args.name}.svg", machine(recorded))
        return
    results = earlier_runs(args.name, args.overrides, args.presets, args.seeds) if args.add else []
    for seed in args.seeds:
        for preset in args.presets:  # interleaved
            results.append(one_run(preset, seed, args.overrides))
            print(f"{preset} seed {seed}: test acc {results[-1]['final_test_acc']:.4f}, {results[-1]['wall_seconds']:.0f} s", flush=True)
    presets = list(dict.fromkeys(r["preset"] for r in results))
    rows = []
    for preset in presets:
        mine = [r for r in results if r["preset"] == preset]
        row = {"preset": preset, "seeds": len(mine)}
        for t in THRESHOLDS:
            times = [r["time_to"][f"{t:.0%}"] for r in mine]
            row[f"to {t:.0%}"] = "-" if None in times else f"{statistics.mean(times) / 60:.1f} min"
        accs = [r["final_test_acc"] for r in mine]
        row["final test acc"] = f"{statistics.mean(accs):.4f} ± {statistics.pstdev(accs):.4f}"
        row["wall"] = f"{statistics.mean(r['wall_seconds'] for r in mine) / 60:.1f} min"
        rows.append(row)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    seeds = sorted({r["seed"] for r in results})
    path = save(args.name, {"presets": presets, "seeds": seeds, "overrides": args.overrides, "runs": results,
                            "summary": rows})  # fmt: skip
    draw(results, RESULTS / f"{args.name}.svg", machine(json.loads(path.read_text())))
    print(path)


if __name__ == "__main__":
    main()
