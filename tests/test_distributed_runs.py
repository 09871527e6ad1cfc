"""`trainlab run --nproc 2`: a data-parallel run of two gloo processes gives the one-process run's weights and
metrics, writes one run folder that a single process loads, resumes with the same number of processes, and
stops every process with the error of the one that failed."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.conftest import TINY
from trainlab.config import load_config
from trainlab.experiment import run_experiment
from trainlab.utils.processes import usable_cores

# fp32: the equivalence holds to float tolerance; a batch of 64 leaves a last batch of 13 examples (7 + 6)
RUN = [*TINY, "precision=fp32", "data.batch_size=64", "threads=1", "optimizer.lr=0.01"]
pytestmark = pytest.mark.skipif(usable_cores() < 2, reason="two processes need two cores")


def trainlab(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})  # fmt: skip


def only_run(folder):
    (run,) = [p for p in (folder / "runs").iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run in 2 processes and in 1 (in this process)."""
    base = tmp_path_factory.mktemp("ddp-runs")
    two = trainlab("run", *RUN, f"output_dir={base / 'two' / 'runs'}", "--nproc", "2")
    assert two.returncode == 0, two.stderr
    config, source = load_config(None, [*RUN, f"output_dir={base / 'one' / 'runs'}"])
    run_experiment(config, source)
    return only_run(base / "two"), only_run(base / "one"), two


def test_two_processes_give_the_weights_and_metrics_of_one(runs):
    two, one, _ = runs
    state_two = torch.load(two / "checkpoints" / "last.pt", weights_only=True)
    state_one = torch.load(one / "checkpoints" / "last.pt", weights_only=True)
    assert list(state_two["model"]) == list(state_one["model"])  # the model's own keys, no DDP "module." prefix
    for key, value in state_one["model"].items():
        torch.testing.assert_close(state_two["model"][key], value, rtol=1e-4, atol=1e-5)
    assert state_two["trainer"]["world_size"] == 2
    record_two, record_one = (json.loads((r / "run.json").read_text()) for r in (two, one))
    assert record_two["world_size"] == 2 and record_one["world_size"] == 1
    for name in ("test_acc", "test_macro_f1", "best_val"):
        assert record_two[name] == pytest.approx(record_one[name], abs=1e-6), name
    for row_two, row_one in zip(*(r["history"] for r in (state_two["trainer"], state_one["trainer"]))):
        for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert row_two[name] == pytest.approx(row_one[name], rel=1e-4, abs=1e-6), name


def test_rank_0_alone_writes_and_reports(runs):
    two, _, result = runs
    assert result.stdout.count("test accuracy") == 1 and "2 processes (gloo)" in result.stdout
    assert "[rank" not in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_a_single_process_evaluates_the_run(runs):
    two, _, _ = runs
    result = trainlab("eval", str(two))
    assert result.returncode == 0, result.stderr
    record = json.loads((two / "run.json").read_text())
    assert f"test accuracy {record['test_acc']:.4f}" in result.stdout


def test_a_distributed_run_resumes_with_its_number_of_processes(runs, tmp_path):
    two, _, _ = runs
    import shutil

    folder = shutil.copytree(two, tmp_path / two.name)
    wrong = trainlab("run", "--resume", str(folder), "--nproc", "1")
    assert wrong.returncode == 2
    assert "was trained by 2 processes; resume it with the same number" in wrong.stderr and "Traceback" not in wrong.stderr
    record = json.loads((folder / "run.json").read_text())
    record["status"] = "interrupted"
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("epochs: 2", "epochs: 3"))
    resumed = trainlab("run", "--resume", str(folder))  # the number of processes comes from the run
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2 of 3" in resumed.stdout and "2 processes (gloo)" in resumed.stdout
    state = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert state["trainer"]["epoch"] == 3 and len(state["trainer"]["history"]) == 3


@pytest.mark.parametrize("args, message", [
    (["--nproc", "64"], "--nproc 64: this machine lets trainlab use"),
    (["--nproc", "2", "data.batch_size=63"], "data.batch_size=63 is the global batch, divided across 2 processes"),
    (["--nproc", "2", "epohcs=2"], "epohcs"),
])  # fmt: skip
def test_mistakes_are_told_once_before_any_process_starts(args, message):
    result = trainlab("run", *TINY, *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("error:") == 1 and "Traceback" not in result.stderr


def test_nproc_under_torchrun_is_refused():
    result = trainlab("run", *TINY, "--nproc", "2", env={"RANK": "0", "WORLD_SIZE": "1"})
    assert result.returncode == 2 and "under torchrun, leave it out" in result.stderr


def test_a_failing_process_stops_the_other_with_its_error(tmp_path):
    (tmp_path / "flaky.py").write_text(textwrap.dedent("""
        import torch.distributed as dist
        from torch import nn

        class Flaky(nn.Module):
            def __init__(self, in_channels, num_classes, image_size):
                super().__init__()
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size[0] * image_size[1], num_classes))
                self.calls = 0

            def forward(self, x):
                self.calls += 1
                if self.training and dist.is_initialized() and dist.get_rank() == 1 and self.calls > 4:
                    raise ValueError("rank 1 broke on purpose")
                return self.net(x)
    """))
    result = trainlab("run", "epochs=3", "progress=false", f"model.name={tmp_path / 'flaky.py'}:Flaky", "--nproc", "2",
                      timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "rank 1 broke on purpose" in result.stderr
    (run,) = (tmp_path / "work" / "runs").iterdir()  # the test's working folder (conftest.isolated)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "another process" in record["error"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_as_one_process(runs, tmp_path):
    """The README's multi-node commands, with two "nodes" on this machine: torchrun's static rendezvous."""
    _, one, _ = runs
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank), "--rdzv_endpoint",
         f"127.0.0.1:{port}", "--nproc_per_node", "1", "-m", "trainlab", "run", *RUN, f"output_dir={tmp_path / 'runs'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    ) for rank in (0, 1)]  # fmt: skip
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "2 processes (gloo)" in outputs[0][0] and outputs[1][0] == ""  # node 1 trains and says nothing
    (run,) = (tmp_path / "runs").iterdir()
    record, record_one = (json.loads((r / "run.json").read_text()) for r in (run, one))
    assert record["world_size"] == 2 and record["test_acc"] == pytest.approx(record_one["test_acc"], abs=1e-6)


def test_a_setup_failure_of_rank_0_stops_every_process_with_one_message(tmp_path):
    (tmp_path / "taken").write_text("a file where the runs folder should be")
    result = trainlab("run", *TINY, f"output_dir={tmp_path / 'taken'}", "--nproc", "2", timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "is a file, expected a folder" in result.stderr
    assert "terminate called" not in result.stderr and "Traceback" not in result.stderr


def test_the_exit_code_is_the_one_the_failing_process_recorded(tmp_path, monkeypatch):
    """The launcher may stop the failing process (SIGTERM) once another one exits 1 on learning of the failure; the
    code the failing process recorded before telling the others still decides."""
    from types import SimpleNamespace

    from trainlab.launch import _exit_code
    from trainlab.utils.ranks import FAILURES, RANK, first_failure, record_failure

    folder = tmp_path / "failures"
    folder.mkdir()
    assert first_failure(str(folder)) is None
    monkeypatch.setenv(FAILURES, str(folder))
    monkeypatch.setenv(RANK, "0")
    record_failure(2)
    monkeypatch.setenv(RANK, "1")
    record_failure(1)  # later: the first recorded failure wins
    stopped, told = SimpleNamespace(timestamp=5, exitcode=-15), SimpleNamespace(timestamp=5, exitcode=1)
    launcher_saw = SimpleNamespace(failures={0: stopped, 1: told})
    assert _exit_code(launcher_saw, first_failure(str(folder))) == 2
    assert _exit_code(launcher_saw, None) == 1  # nothing recorded: the first positive exit code
    assert sorted(p.name for p in folder.iterdir()) == ["rank-0", "rank-1"]  # no temporary file left
