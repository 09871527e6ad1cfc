"""Dynamic batching: concurrent image requests run in shared forward passes and each gets exactly its own answer;
a lone request is not delayed; a failing forward pass fails every request of its batch with the server's error."""

import asyncio

import httpx
import numpy as np
import torch

from tests.serve.conftest import digit_images
from trainlab.serve.app import create_app
from trainlab.serve.batching import Batcher
from trainlab.serve.model import ServedModel


def uint8_input(images):
    return {"name": "input", "shape": list(images.shape), "datatype": "UINT8", "data": images.ravel().tolist()}


async def send_all(app, name, requests):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*(client.post(f"/v2/models/{name}/infer", json={"inputs": [uint8_input(images)]})
                                      for images in requests))  # fmt: skip


def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_rows(serve_runs):
    served = ServedModel.from_run(serve_runs["image"], backend="torch")
    app = create_app(served, max_batch=16)
    images, _ = digit_images()
    requests = [images[i : i + 1 + i % 3] for i in range(0, 60, 3)]  # 20 requests of 1 to 3 images
    expected = [served.probabilities(served.image_inputs(list(batch))) for batch in requests]

    answers = asyncio.run(send_all(app, serve_runs["image"].name, requests))

    assert all(answer.status_code == 200 for answer in answers)
    for answer, want in zip(answers, expected):
        got = np.array(answer.json()["outputs"][0]["data"], dtype=np.float32).reshape(want.shape)
        np.testing.assert_allclose(got, want, atol=1e-5)
    batches = app.state.batcher.batches
    assert sum(batches) == sum(len(batch) for batch in requests) and max(batches) > 3 and max(batches) <= 16 + 2


def test_a_lone_request_runs_at_once_and_texts_are_not_batched(serve_runs):
    image_app = create_app(ServedModel.from_run(serve_runs["image"], backend="torch"), max_batch=8)
    images, _ = digit_images()
    (answer,) = asyncio.run(send_all(image_app, serve_runs["image"].name, [images[:1]]))
    assert answer.status_code == 200 and image_app.state.batcher.batches == [1]
    assert create_app(ServedModel.from_run(serve_runs["text"]), max_batch=8).state.batcher is None


def test_a_failing_forward_pass_fails_each_request_of_its_batch():
    def broken(parts: list[torch.Tensor]) -> np.ndarray:
        raise RuntimeError("out of memory")

    batcher = Batcher(broken, max_batch=4)

    async def three():
        return await asyncio.gather(*(batcher(torch.zeros(1, 3)) for _ in range(3)), return_exceptions=True)

    results = asyncio.run(three())
    assert [str(r) for r in results] == ["out of memory"] * 3


def test_a_batch_of_uint8_images_and_ready_inputs_is_normalised_as_each_alone(serve_runs):
    served = ServedModel.from_run(serve_runs["image"], backend="torch")
    images, _ = digit_images()
    first, second = images[:3].copy(), images[3:5].copy()
    second.setflags(write=False)  # as np.frombuffer gives binary tensors
    ready = served.image_inputs(list(images[5:6]))
    alone = [served.image_inputs(list(first)), served.image_inputs(list(second)), ready]
    torch.testing.assert_close(served.batch_inputs([first, second]), torch.cat(alone[:2]))
    torch.testing.assert_close(served.batch_inputs([first, ready, second]), torch.cat([alone[0], ready, alone[1]]))
