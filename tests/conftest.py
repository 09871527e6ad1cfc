import pytest

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
