"""Runs to serve, trained once per test session: a tiny CNN on the embedded digits (exported to ONNX) and a tiny
LSTM on a tiny emotion set; and a real uvicorn server on a free port, in a thread."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="trainlab serve needs the serve extra (fastapi, uvicorn, python-multipart)")

from tests.conftest import TINY  # noqa: E402
from tests.text.tiny import write_emotion  # noqa: E402
from trainlab.config import load_config  # noqa: E402
from trainlab.experiment import run_experiment  # noqa: E402

TINY_TEXT = ["data.name=emotion", "data.batch_size=16", "epochs=12", "optimizer.lr=0.02", "progress=false",
             "model.name=lstm_classifier",
             "model.embedding_dim=8", "model.hidden_size=8", "precision=fp32"]  # fmt: skip


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory):
    """{"image": digits CNN run folder (exported), "text": emotion LSTM run folder, "root": their folder}."""
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("TRAINLAB_CACHE", str(root / "cache"))
        patch.setenv("TRAINLAB_DATA", str(root / "data"))
        write_emotion(root / "data" / "emotion", per_class=(20, 3, 3))
        image = run_experiment(*load_config(None, [*TINY, "epochs=6", "optimizer.lr=0.01", "precision=fp32"])).path.resolve()
        text = run_experiment(*load_config(None, TINY_TEXT)).path.resolve()
        if _has_onnxruntime():
            from trainlab.tools.export import export_run

            export_run(image)
    return {"image": image, "text": text, "root": root}


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def digit_images():
    """The embedded digits' test images (N, 8, 8, 1) uint8 and labels, as the runs were tested on them."""
    from trainlab.data.vision import digits

    test = digits(test_only=True).test
    return test.images, test.labels


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def running_server(app):
    """A real uvicorn server for `app` on 127.0.0.1 and a free port, in a thread; yields its base URL."""
    import uvicorn

    from trainlab.serve.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
