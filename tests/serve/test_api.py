"""`trainlab serve`: the Open Inference Protocol v2 routes, /predict and /metadata, answered with the run's own
predictions; every bad request gets its 4xx with a JSON error and the next good request still succeeds."""

import json

import numpy as np
import pytest
import torch

from tests.serve.conftest import digit_images, png_bytes
from trainlab.errors import UsageError
from trainlab.inference import Predictor
from trainlab.serve.app import create_app
from trainlab.serve.model import ServedModel

from fastapi.testclient import TestClient  # noqa: E402  (after conftest's importorskip)


@pytest.fixture(scope="module")
def image_model(serve_runs):
    return ServedModel.from_run(serve_runs["image"], backend="torch")


@pytest.fixture(scope="module")
def image_client(image_model):
    return TestClient(create_app(image_model, max_request_bytes=64 * 1024))


@pytest.fixture(scope="module")
def text_client(serve_runs):
    return TestClient(create_app(ServedModel.from_run(serve_runs["text"])))


def infer(client, name, inputs, **extra):
    return client.post(f"/v2/models/{name}/infer", json={"inputs": inputs, **extra})


def uint8_input(images):
    return {"name": "input", "shape": list(images.shape), "datatype": "UINT8", "data": images.ravel().tolist()}


def test_the_protocol_routes_answer_with_the_models_shapes(image_client, image_model, serve_runs):
    name = serve_runs["image"].name
    assert image_client.get("/v2/health/live").json() == {"live": True}
    assert image_client.get("/v2/health/ready").json() == {"ready": True}
    assert image_client.get("/v2").json()["extensions"] == ["binary_tensor_data", "classification"]
    assert image_client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    metadata = image_client.get(f"/v2/models/{name}").json()
    assert metadata["inputs"][0] | {"parameters": None} == {"name": "input", "datatype": "UINT8", "shape": [-1, 8, 8, 1], "parameters": None}
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                                   {"name": "label", "datatype": "BYTES", "shape": [-1]}]  # fmt: skip
    images, labels = digit_images()
    response = infer(image_client, name, [uint8_input(images[:20])], id="request-7")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "request-7" and body["model_name"] == name
    probabilities, label = body["outputs"]
    assert (probabilities["name"], probabilities["datatype"], probabilities["shape"]) == ("probabilities", "FP32", [20, 10])
    assert (label["name"], label["datatype"], label["shape"]) == ("label", "BYTES", [20])
    # the server's answer is the run's own model on the same images
    expected = Predictor.from_run(serve_runs["image"], device="cpu").predict(list(images[:20]))
    served = np.array(probabilities["data"], dtype=np.float32).reshape(20, 10)
    assert np.allclose(served, expected.numpy(), atol=1e-5)
    assert label["data"] == [str(i) for i in expected.argmax(1).tolist()]
    assert np.mean(np.array(label["data"]) == labels[:20].astype(str)) >= 0.7  # a trained model, not noise


def test_normalised_fp32_images_and_the_classification_extension(image_client, image_model, serve_runs):
    name = serve_runs["image"].name
    images, _ = digit_images()
    normalised = image_model.image_inputs(list(images[:3])).numpy()
    fp32 = {"name": "input", "shape": [3, 1, 8, 8], "datatype": "FP32", "data": normalised.ravel().tolist()}
    outputs = [{"name": "probabilities"}, {"name": "top", "parameters": {"classification": 2}}]
    body = infer(image_client, name, [fp32], outputs=outputs).json()
    probabilities = np.array(body["outputs"][0]["data"]).reshape(3, 10)
    assert np.allclose(probabilities, image_model.probabilities(torch.from_numpy(normalised)), atol=1e-5)
    top = body["outputs"][1]
    assert top["shape"] == [3, 2] and top["datatype"] == "BYTES"
    first = top["data"][0].split(":")  # probability:index:label, as Triton's classification extension writes it
    best = int(probabilities[0].argmax())
    assert (int(first[1]), first[2]) == (best, str(best)) and float(first[0]) == pytest.approx(probabilities[0, best], abs=1e-5)


def test_predict_takes_several_image_files_and_answers_the_top_classes(image_client, image_model):
    images, labels = digit_images()
    files = [("file", (f"digit{i}.png", png_bytes(images[i]), "image/png")) for i in range(4)]
    response = image_client.post("/predict?top=3", files=files)
    assert response.status_code == 200
    body = response.json()
    expected = image_model.probabilities(image_model.image_inputs(list(images[:4])))
    assert [p["input"] for p in body["predictions"]] == [f"digit{i}.png" for i in range(4)]
    for prediction, row in zip(body["predictions"], expected):
        assert len(prediction["top"]) == 3
        assert [t["label"] for t in prediction["top"]] == [str(i) for i in np.argsort(-row)[:3]]
        assert prediction["top"][0]["probability"] == pytest.approx(row.max(), abs=1e-5)
        assert prediction["label"] == prediction["top"][0]["label"]
    assert body["latency_ms"] > 0
    metadata = image_client.get("/metadata").json()
    assert metadata["classes"] == [str(d) for d in range(10)] and metadata["kind"] == "image"
    assert metadata["image"] == {"height": 8, "width": 8, "channels": 1, "mode": "L"}


def test_a_text_model_takes_bytes_tensors_and_json_texts(text_client, serve_runs):
    name = serve_runs["text"].name
    predictor = Predictor.from_run(serve_runs["text"], device="cpu")
    texts = ["i feel so happy today", "i am really scared now", "so furious"]
    metadata = text_client.get(f"/v2/models/{name}").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    body = infer(text_client, name, [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]).json()
    expected = predictor.predict(texts).numpy()
    assert np.allclose(np.array(body["outputs"][0]["data"]).reshape(3, -1), expected, atol=1e-5)
    answer = text_client.post("/predict", json={"texts": texts}).json()
    assert [p["label"] for p in answer["predictions"]] == [predictor.classes[i] for i in expected.argmax(1)]
    assert text_client.post("/predict", json={"text": texts[0]}).json()["predictions"][0]["input"] == texts[0]


BAD_IMAGE_REQUESTS = {
    "not an image": (lambda c, n: c.post("/predict", files={"file": ("cat.jpg", b"GIF89a but not really", "image/jpeg")}), 400, "not an image"),
    "an empty file": (lambda c, n: c.post("/predict", files={"file": ("cat.jpg", b"", "image/jpeg")}), 400, "is empty"),
    "no file field": (lambda c, n: c.post("/predict", files={"photo": ("cat.png", b"x", "image/png")}), 400, "field 'file'"),
    "a wrong content type": (lambda c, n: c.post("/predict", content=b"abc", headers={"content-type": "text/plain"}), 415, "multipart/form-data"),
    "texts to an image model": (lambda c, n: c.post("/predict", json={"texts": ["hello"]}), 400, "classifies images"),
    "top out of range": (lambda c, n: c.post("/predict?top=0", files={"file": ("a.png", b"x", "image/png")}), 400, "top=0"),
    "a wrong tensor shape": (lambda c, n: infer(c, n, [uint8_input(np.zeros((1, 9, 9, 1), np.uint8))]), 400, r"\[N, 8, 8, 1\]"),
    "a wrong datatype": (lambda c, n: infer(c, n, [{**uint8_input(np.zeros((1, 8, 8, 1), np.uint8)), "datatype": "INT64"}]), 400, "datatype INT64"),
    "an unknown datatype": (lambda c, n: infer(c, n, [{**uint8_input(np.zeros((1, 8, 8, 1), np.uint8)), "datatype": "UINT9"}]), 400, "unknown datatype"),
    "data that does not fill the shape": (lambda c, n: infer(c, n, [{**uint8_input(np.zeros((1, 8, 8, 1), np.uint8)), "data": [1, 2]}]), 400, "holds 64 values, data has 2"),
    "pixels beyond 255": (lambda c, n: infer(c, n, [uint8_input(np.full((1, 8, 8, 1), 300))]), 400, "whole numbers in 0..255"),
    "a wrong input name": (lambda c, n: infer(c, n, [{**uint8_input(np.zeros((1, 8, 8, 1), np.uint8)), "name": "image"}]), 400, "input is 'input'"),
    "no inputs": (lambda c, n: c.post(f"/v2/models/{n}/infer", json={"inputs": []}), 400, "inputs"),
    "a misspelt field": (lambda c, n: c.post(f"/v2/models/{n}/infer", json={"input": []}), 400, "inputs"),
    "broken JSON": (lambda c, n: c.post(f"/v2/models/{n}/infer", content=b"{", headers={"content-type": "application/json"}), 400, "not JSON"),
    "an unknown output": (lambda c, n: infer(c, n, [uint8_input(np.zeros((1, 8, 8, 1), np.uint8))], outputs=[{"name": "logits"}]), 400, "outputs are"),
    "a wrong content type for the protocol": (lambda c, n: c.post(f"/v2/models/{n}/infer", content=b"{}", headers={"content-type": "text/plain"}),
                                              415, "expected application/json"),  # fmt: skip
    "a GET of the infer route": (lambda c, n: c.get(f"/v2/models/{n}/infer"), 405, "Method Not Allowed"),
    "an unknown model": (lambda c, n: infer(c, "resnet", [uint8_input(np.zeros((1, 8, 8, 1), np.uint8))]), 404, "no model 'resnet'"),
    "a route that is not there": (lambda c, n: c.get("/v1/models"), 404, "Not Found"),
    "a request over the size limit": (lambda c, n: c.post("/predict", files={"file": ("big.png", b"x" * 100_000, "image/png")}), 413, "larger than"),
    "a large tensor without Content-Length": (lambda c, n: c.post(f"/v2/models/{n}/infer", content=iter([b"[" + b"0," * 40_000, b"0]"]),
                                                                 headers={"content-type": "application/json"}), 413, "larger than"),  # fmt: skip
}


@pytest.mark.parametrize("case", BAD_IMAGE_REQUESTS)
def test_each_bad_request_gets_its_4xx_and_the_server_goes_on(image_client, serve_runs, case):
    send, status, message = BAD_IMAGE_REQUESTS[case]
    name = serve_runs["image"].name
    response = send(image_client, name)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]
    import re

    assert re.search(message, response.json()["error"]), response.json()["error"]
    images, _ = digit_images()
    assert infer(image_client, name, [uint8_input(images[:1])]).status_code == 200


def test_a_fault_of_the_server_is_a_500_with_its_error_and_the_next_request_is_answered(serve_runs, monkeypatch):
    served = ServedModel.from_run(serve_runs["image"], backend="torch")
    client = TestClient(create_app(served), raise_server_exceptions=False)
    images, _ = digit_images()
    forward = served.probabilities
    monkeypatch.setattr(served, "probabilities", lambda inputs: 1 / 0)
    response = infer(client, served.name, [uint8_input(images[:2])])
    assert response.status_code == 500
    assert response.json() == {"error": "the server failed on this request (ZeroDivisionError: division by zero)"}
    monkeypatch.setattr(served, "probabilities", forward)
    assert infer(client, served.name, [uint8_input(images[:2])]).status_code == 200


def test_the_infer_route_is_in_the_api_docs(image_client):
    paths = image_client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v2/models/{model}/infer"]


def test_an_empty_text_is_refused(text_client, serve_runs):
    response = text_client.post("/predict", json={"texts": ["fine", "  "]})
    assert response.status_code == 400 and response.json() == {"error": "text 1 is empty"}
    tensor = {"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}
    assert infer(text_client, serve_runs["text"].name, [tensor]).json() == {"error": "text 0 is empty"}
    files = {"file": ("a.png", png_bytes(np.zeros((8, 8, 1), np.uint8)), "image/png")}
    assert "classifies texts" in text_client.post("/predict", files=files).json()["error"]
    assert text_client.post("/predict", json={"texts": ["so happy"]}).status_code == 200


def test_the_backend_is_the_export_of_the_served_checkpoint(serve_runs, tmp_path):
    assert ServedModel.from_run(serve_runs["image"]).backend == "onnx"  # exported by the fixture
    assert ServedModel.from_run(serve_runs["image"], backend="onnx-int8").backend == "onnx-int8"
    assert ServedModel.from_run(serve_runs["text"]).backend == "torch"  # not exported
    with pytest.raises(UsageError, match=r"has no export \(`trainlab export"):
        ServedModel.from_run(serve_runs["text"], backend="onnx")
    assert ServedModel.from_run(serve_runs["image"], checkpoint="last").backend == "torch"  # the export is of best.pt
    export = serve_runs["image"] / "export" / "export.json"
    record = json.loads(export.read_text())
    stale = {**record, "epoch": record["epoch"] - 1}
    export.write_text(json.dumps(stale))
    try:
        assert ServedModel.from_run(serve_runs["image"]).backend == "torch"
        with pytest.raises(UsageError, match="export it again"):
            ServedModel.from_run(serve_runs["image"], backend="onnx")
    finally:
        export.write_text(json.dumps(record))
    with pytest.raises(UsageError, match="--backend 'tensorrt'"):
        ServedModel.from_run(serve_runs["image"], backend="tensorrt")
