"""Best-ball: each epoch's balls continue from the best ball's checkpoint, and the final schedule replays exactly."""

import csv
import json

import pytest
from rich.console import Console

from trainlab.errors import ConfigError
from trainlab.tools.sweep.bestball import replay
from trainlab.tools.sweep.study import start_sweep

CONFIG = """\
model: {name: mnist_mlp, hidden: [16]}
optimizer: {name: adam, lr: 0.01}
scheduler: {name: cosine}
epochs: 2
progress: false
precision: fp32
channels_last: false
sweep:
  method: bestball
  factors: [0.5, 2]
  space: {optimizer.lr: {low: 1.0e-4, high: 0.1, log: true}}
"""
QUIET = Console(quiet=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def metrics(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_balls_continue_from_the_best_checkpoint_and_the_schedule_replays_exactly(isolated):
    (isolated / "bb.yaml").write_text(CONFIG)
    folder = start_sweep("bb.yaml", [], [], workers=1, storage_url=None, study_name=None, console=QUIET)
    record = json.loads((folder / "bestball.json").read_text())
    first = [b for b in record["balls"] if b["epoch"] == 1]
    second = [b for b in record["balls"] if b["epoch"] == 2]
    assert sorted(b["settings"]["optimizer.lr"] for b in first) == [0.005, 0.02]  # the config's 0.01 x 0.5, x 2
    winner = max(first, key=lambda b: (b["val/acc"], -b["ball"]))
    assert sorted(b["settings"]["optimizer.lr"] for b in second) == [winner["settings"]["optimizer.lr"] * f for f in (0.5, 2)]
    parent_history = metrics(folder / winner["run"])
    for ball in second:
        assert ball["parent"] == winner["ball"]
        run = json.loads((folder / ball["run"] / "run.json").read_text())
        assert run["init_from"].endswith(f"{winner['run']}/checkpoints/last.pt") and run["started_at_epoch"] == 1
        assert metrics(folder / ball["run"])[0] == parent_history[0], "epoch 1 is the parent's, continued from its checkpoint"
    final = record["final"]
    assert final == max(second, key=lambda b: (b["val/acc"], -b["ball"])) and final["kept"]
    assert [b["ball"] for b in record["schedule"]] == [winner["ball"], final["ball"]]
    assert (folder / "bestball.png").is_file() and (folder / "best.yaml").is_file()

    run, value, ball = replay(folder, QUIET)
    assert ball.number == final["ball"]
    assert value == final["val/acc"], "the replayed schedule reproduces the final ball's metric exactly"
    assert [row["lr"] for row in metrics(run.path)] == [row["lr"] for row in metrics(folder / final["run"])]


def test_bestball_searches_only_settings_it_can_change_between_epochs(isolated):
    (isolated / "bb.yaml").write_text(CONFIG.replace("optimizer.lr: {low: 1.0e-4, high: 0.1, log: true}", "data.batch_size: [32, 64]"))
    with pytest.raises(ConfigError, match="optimizer.lr, optimizer.weight_decay"):
        start_sweep("bb.yaml", [], [], workers=1, storage_url=None, study_name=None, console=QUIET)
