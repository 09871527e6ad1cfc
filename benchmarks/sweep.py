"""Hyperparameter search on a small real problem: TPE and best-ball against random search, same budget.

    python -m benchmarks.sweep                                  # digits, 9 trials x 5 epochs, seeds 0 1
    python -m benchmarks.sweep --trials 4 --epochs 2 --seeds 0  # a quick check that it runs

The problem: a small workshop CNN on scikit-learn's digits (embedded), Adam's learning rate and
weight decay searched over log ranges. The budget is counted in training epochs: random and TPE
run `trials` trials of `epochs` epochs; best-ball runs `epochs` epochs of 3 x 3 balls (each setting
x 1/3, 1, 3), as many epochs when trials = 9. Each method's sweep runs in this process, as
`trainlab sweep` runs one worker. Reported per method, mean ± std over seeds: the best
validation accuracy found, the test accuracy of that trial's run, wall time, and the best
validation accuracy reached by each quarter of the wall time. Figures go to benchmarks/results/sweep.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from rich.console import Console

from benchmarks.common import save, table
from trainlab.tools.sweep.study import start_sweep

PROBLEM = """\
model: {name: workshop_cnn, channels: [8, 8, 16, 16], hidden: [64, 32]}
optimizer: {name: adam, lr: 1.0e-3, weight_decay: 1.0e-4}
scheduler: {name: cosine}
epochs: EPOCHS
progress: false
sweep:
  method: random
  space:
    optimizer.lr: {low: 1.0e-4, high: 3.0e-1, log: true}
    optimizer.weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}
"""
METHODS = ("random", "tpe", "bestball")


def run_method(method: str, seed: int, trials: int, epochs: int, work: Path) -> dict:
    config = work / f"{method}-{seed}.yaml"
    config.write_text(PROBLEM.replace("EPOCHS", str(epochs)))
    options = [f"sweep.method={method}", f"sweep.output_dir={work}"]
    options += ["sweep.factors=[0.3333333333,1,3]"] if method == "bestball" else [f"sweep.trials={trials}", "sweep.pruner=none"]
    started = datetime.datetime.now()
    # The seed seeds the trials' runs and (by default) the sampler: best-ball's only randomness is the runs'.
    quiet = Console(quiet=True)
    folder = start_sweep(str(config), [f"seed={seed}"], options, workers=1, storage_url=None, study_name=None, console=quiet)
    wall = (datetime.datetime.now() - started).total_seconds()
    storage = JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    done = [t for t in optuna.load_study(study_name=config.stem, storage=storage).trials if t.state == TrialState.COMPLETE]
    if method == "bestball":
        best = next(t for t in done if t.number == json.loads((folder / "bestball.json").read_text())["final"]["ball"])
    else:
        best = max(done, key=lambda t: (t.value, -t.number))
    record = json.loads((folder / best.user_attrs["run"] / "run.json").read_text())
    # Any trial's (or ball's) model is a model found: the best validation accuracy known at each quarter of the time.
    found = [((t.datetime_complete - started).total_seconds(), t.value) for t in done]
    by_quarter = [max((v for s, v in found if s <= q * wall / 4), default=None) for q in (1, 2, 3, 4)]
    return {
        "method": method, "seed": seed, "best val acc": best.value, "test acc": record["test_acc"], "wall s": wall,
        "epochs trained": sum(t.last_step - t.user_attrs.get("epoch", 1) + 1 for t in done), "by quarter": by_quarter,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=9, help="random and TPE trials (9 matches best-ball's epochs)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the runs and the sampler")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainlab-sweep-bench-"))
    rows = []
    for seed in args.seeds:
        for method in METHODS:  # interleaved, so that a change of machine speed hits every method alike
            rows.append(run_method(method, seed, args.trials, args.epochs, work))
            print(f"{method} seed {seed}: best val acc {rows[-1]['best val acc']:.4f} in {rows[-1]['wall s']:.0f} s", flush=True)
    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {
            key: {"mean": statistics.mean(r[key] for r in mine), "std": statistics.pstdev(r[key] for r in mine)}
            for key in ("best val acc", "test acc", "wall s", "epochs trained")
        }
    print(table([r | {"by quarter": " ".join("-" if v is None else f"{v:.3f}" for v in r["by quarter"])} for r in rows]))
    for method, s in summary.items():
        print(f"{method:>8}: best val acc {100 * s['best val acc']['mean']:.2f} ± {100 * s['best val acc']['std']:.2f} %, "
              f"test acc {100 * s['test acc']['mean']:.2f} ± {100 * s['test acc']['std']:.2f} %, "
              f"{s['wall s']['mean']:.0f} s, {s['epochs trained']['mean']:.0f} epochs")  # fmt: skip
    path = save("sweep", {"trials": args.trials, "epochs": args.epochs, "seeds": args.seeds, "summary": summary, "rows": rows})
    print(path)


if __name__ == "__main__":
    main()
