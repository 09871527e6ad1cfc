"""A sweep whose study lives in a real PostgreSQL server, started here in a temporary folder.

Skipped when PostgreSQL's initdb is not on the machine (`.ci/run` installs Debian's postgresql).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from tests.tools.test_sweep import BASE, read_trials
from trainlab.tools.sweep.study import start_sweep


def postgres_bin() -> Path | None:
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway server on a free port; its URL. PostgreSQL refuses to run as root: then it runs as `postgres`."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb is not installed")
    root = Path(tempfile.mkdtemp(prefix="trainlab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = root / "data", free_port()
    try:
        subprocess.run([*as_user, bin_dir / "initdb", "-D", data, "-U", "trainlab", "--auth=trust"], check=True, capture_output=True)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "start"],
                       check=True, capture_output=True)  # fmt: skip
        yield f"postgresql://trainlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_a_sweep_records_every_trial_in_postgresql(isolated, postgres_url):
    space = "{optimizer.lr: {low: 0.003, high: 0.03, log: true}}"
    (isolated / "pg.yaml").write_text(BASE + f"sweep:\n  method: random\n  trials: 2\n  space: {space}\n")
    folder = start_sweep("pg.yaml", [], [], workers=1, storage_url=postgres_url, study_name="digits-lr", console=Console(quiet=True))
    rows = read_trials(folder)
    assert [r["state"] for r in rows] == ["complete", "complete"] and not (folder / "study.journal").exists()
    study = optuna.load_study(study_name="digits-lr", storage=postgres_url)
    assert [(t.number, t.value) for t in study.trials] == [(int(r["number"]), float(r["val/acc"])) for r in rows]
