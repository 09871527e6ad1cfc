"""An existing Open Inference Protocol client, unchanged: Triton's `tritonclient.http` against a real server, with
its default binary tensors, JSON tensors, the classification extension and the request id."""

import numpy as np
import pytest

from tests.serve.conftest import digit_images, running_server
from trainlab.serve.app import create_app
from trainlab.serve.model import ServedModel

httpclient = pytest.importorskip("tritonclient.http", reason="the client test needs tritonclient[http] (the dev extra)")


def client_of(url: str):
    return httpclient.InferenceServerClient(url.removeprefix("http://"), connection_timeout=10, network_timeout=30)


def test_tritons_client_infers_images_in_binary_and_json(serve_runs):
    served = ServedModel.from_run(serve_runs["image"])
    images, _ = digit_images()
    expected = served.probabilities(served.image_inputs(list(images[:5])))
    with running_server(create_app(served)) as url:
        client = client_of(url)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(served.name)
        metadata = client.get_model_metadata(served.name)
        assert metadata["inputs"][0]["shape"] == [-1, 8, 8, 1]
        for binary in (True, False):
            tensor = httpclient.InferInput("input", list(images[:5].shape), "UINT8")
            tensor.set_data_from_numpy(images[:5], binary_data=binary)
            outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary),
                       httpclient.InferRequestedOutput("label", binary_data=binary),
                       httpclient.InferRequestedOutput("top", binary_data=binary, class_count=3)]  # fmt: skip
            result = client.infer(served.name, [tensor], outputs=outputs, request_id=f"r{binary}")
            assert result.get_response()["id"] == f"r{binary}"
            assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
            labels = result.as_numpy("label")
            text = np.vectorize(lambda x: x.decode() if isinstance(x, bytes) else x, otypes=[object])  # binary: bytes
            assert list(text(labels)) == [served.classes[i] for i in expected.argmax(1)]
            top = text(result.as_numpy("top"))
            assert top.shape == (5, 3) and int(top[0, 0].split(":")[1]) == expected[0].argmax()
        with pytest.raises(httpclient.InferenceServerException, match=r"\[N, 8, 8, 1\]"):
            wrong = httpclient.InferInput("input", [1, 4, 4, 1], "UINT8")
            wrong.set_data_from_numpy(np.zeros((1, 4, 4, 1), np.uint8))
            client.infer(served.name, [wrong])
        client.close()


def test_tritons_client_sends_texts_as_bytes(serve_runs):
    served = ServedModel.from_run(serve_runs["text"])
    texts = ["i feel so happy today", "so angry"]
    expected = served.probabilities(served.text_inputs(texts))
    with running_server(create_app(served)) as url:
        client = client_of(url)
        tensor = httpclient.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))  # binary: 4-byte lengths
        result = client.infer(served.name, [tensor])
        assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
        client.close()
