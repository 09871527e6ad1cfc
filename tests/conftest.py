import signal

import pytest

# A suite started in the background (`cmd &` ignores Ctrl-C, `nohup` ignores SIGHUP) would hand those ignored signals
# on to the runs its tests start, and a run honours an ignored signal as every Unix program does: the signal tests
# need the runs to get them as a terminal gives them.
for _signum, _default in ((signal.SIGINT, signal.default_int_handler), (getattr(signal, "SIGHUP", None), signal.SIG_DFL)):
    if _signum is not None and signal.getsignal(_signum) == signal.SIG_IGN:
        signal.signal(_signum, _default)

# A workshop CNN small enough that an epoch of the embedded digits takes a fraction of a second.
TINY = ["model.channels=[4,4,8,8]", "model.hidden=[16,16]", "epochs=2", "progress=false"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder, with its own data and cache folders."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "data"))
    return work


def _mount(*args) -> bool:
    import subprocess

    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to, root included: a read-only bind mount as root, chmod 555 otherwise.
    Returns a function that makes `path` (a folder) read-only until the test ends."""
    import os

    mounted = []

    def make(path):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,ro,bind", str(path))):
                pytest.skip("running as root without permission to mount a read-only folder")
            mounted.append(path)
        else:
            path.chmod(0o555)
        return path

    yield make
    for path in mounted:
        _umount(path)
    for path in tmp_path.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


@pytest.fixture
def full_disk_dir(tmp_path):
    """A folder on a tiny filesystem (a tmpfs of `size` bytes, needs root), to fill the disk for real.
    Returns a function (path, size) -> path."""
    import os

    mounted = []

    def make(path, size=256 * 1024):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
            pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        _umount(path)
