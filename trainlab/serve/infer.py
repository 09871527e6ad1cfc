"""The Open Inference Protocol's infer route, `POST /v2/models/{name}/infer`: the request's tensors in, the model's
outputs back, and the plain ASGI handler that answers it in front of FastAPI.

The infer route is the one that carries the load, and on a small CNN FastAPI's request handling (routing,
dependency solving, the Request object) costs more CPU than the protocol and the forward pass together, so
`InferEndpoint` answers the served model's path itself; FastAPI keeps the documented route, which answers other
model names (404) and the same requests when called directly. Both go through `Infer.answer`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from trainlab.serve.model import BadInput, ServedModel
from trainlab.serve.protocol import HEADER_LENGTH, ProtocolError, output_tensor, parse_request

OUTPUTS = ("probabilities", "label")  # what /infer answers when the request names no outputs


class ClientError(Exception):
    """A request the server cannot answer: a 4xx with `{"error": message}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Infer:
    """The infer route's answers for `served`; `forward` runs a batch of model inputs (directly or batched)."""

    def __init__(self, served: ServedModel, forward: Callable[[Any], Awaitable[np.ndarray]]):
        self.served, self.forward = served, forward
        self.path = f"/v2/models/{served.name}/infer"

    async def answer(self, body: bytes, content_type: str, header_length: str | None) -> tuple[bytes, dict[str, str]]:
        """The response body and its headers; a bad request raises ClientError."""
        started = time.perf_counter()
        if header_length is None and content_type not in ("application/json", ""):
            raise ClientError(415, f"content type '{content_type}': expected application/json "
                                   f"(or binary tensors with the {HEADER_LENGTH} header)")  # fmt: skip
        try:
            request, tensors = parse_request(body, header_length)
            inputs = model_inputs(self.served, request.inputs[0], tensors, len(request.inputs))
        except (ProtocolError, BadInput) as e:
            raise ClientError(400, str(e)) from None
        probabilities = await self.forward(inputs)
        binary_default = bool(request.parameters.get("binary_data_output", False))
        requested = [(o.name, o.parameters) for o in request.outputs or []] or [(o, {}) for o in OUTPUTS]
        outputs, chunks = [], []
        for output, parameters in requested:
            values = output_values(self.served, output, parameters, probabilities)
            tensor, raw = output_tensor(output, values, bool(parameters.get("binary_data", binary_default)))
            outputs.append(tensor)
            chunks.append(raw)
        response = {"model_name": self.served.name, "model_version": "", "outputs": outputs,
                    "parameters": {"latency_ms": round((time.perf_counter() - started) * 1000, 3)}}  # fmt: skip
        if request.id is not None:
            response["id"] = request.id
        header = json.dumps(response).encode()
        if not any(chunks):
            return header, {"content-type": "application/json"}
        return header + b"".join(chunks), {"content-type": "application/octet-stream", HEADER_LENGTH.lower(): str(len(header))}


class InferEndpoint:
    """ASGI middleware: `POST` to the served model's infer path is answered here; everything else goes on to `app`.
    Errors of the server's own propagate, to be answered 500 by the app's error handler."""

    def __init__(self, app: Any, infer: Infer):
        self.app, self.infer = app, infer

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.infer.path:
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
        header_length = headers.get(HEADER_LENGTH.lower().encode())
        try:
            body, response_headers = await self.infer.answer(
                b"".join(chunks), content_type, None if header_length is None else header_length.decode("latin-1")
            )
            status = 200
        except ClientError as e:
            status, body, response_headers = e.status, json.dumps({"error": str(e)}).encode(), {"content-type": "application/json"}
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*raw_headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def tensor_metadata(served: ServedModel) -> dict[str, Any]:
    if served.kind == "text":
        return {"name": "text", "datatype": "BYTES", "shape": [-1]}
    channels, height, width = served.preprocess.shape
    return {"name": "input", "datatype": "UINT8", "shape": [-1, height, width, channels],
            "parameters": {"also": f"FP32 [-1, {channels}, {height}, {width}]: images normalised as preprocess.json says"}}  # fmt: skip


def model_inputs(served: ServedModel, tensor: Any, tensors: dict[str, np.ndarray], count: int):
    """The request's one input tensor, checked: token ids or normalised images (tensors), or uint8 images (N, H, W, C)."""
    if count != 1:
        raise ProtocolError(f"{count} inputs: this model takes one, '{tensor_metadata(served)['name']}'")
    expected = tensor_metadata(served)
    if tensor.name != expected["name"]:
        raise ProtocolError(f"input '{tensor.name}': this model's input is '{expected['name']}'")
    values = tensors[tensor.name]
    if served.kind == "text":
        if tensor.datatype != "BYTES" or values.ndim != 1:
            raise ProtocolError(f"input 'text': expected BYTES of shape [N] (one string per text), got {tensor.datatype} {list(values.shape)}")
        return served.text_inputs([str(x) for x in values])
    channels, height, width = served.preprocess.shape
    if tensor.datatype == "UINT8":
        if list(values.shape[1:]) != [height, width, channels] or values.ndim != 4:
            raise ProtocolError(f"input 'input': UINT8 images must have shape [N, {height}, {width}, {channels}] (height, width, "
                                f"channels), got {list(values.shape)}")  # fmt: skip
        return values  # normalised with the rest of its batch (ServedModel.batch_inputs)
    if tensor.datatype == "FP32":
        if list(values.shape[1:]) != [channels, height, width] or values.ndim != 4:
            raise ProtocolError(f"input 'input': FP32 images must have shape [N, {channels}, {height}, {width}] (normalised, "
                                f"channels first), got {list(values.shape)}")  # fmt: skip
        import torch

        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    raise ProtocolError(f"input 'input': datatype {tensor.datatype}: expected UINT8 [N, {height}, {width}, {channels}] "
                        f"or FP32 [N, {channels}, {height}, {width}]")  # fmt: skip


def output_values(served: ServedModel, output: str, parameters: dict[str, Any], probabilities: np.ndarray) -> np.ndarray:
    classes = served.classes
    top = parameters.get("classification")
    if top is not None:  # Triton's classification extension: "probability:index:label", most likely first
        if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= len(classes):
            raise ClientError(400, f"output '{output}': classification {top!r}: expected a whole number 1..{len(classes)}")
        order = np.argsort(-probabilities, axis=1)[:, :top]
        return np.array([[f"{p[i]:.6f}:{i}:{classes[i]}" for i in row] for row, p in zip(order, probabilities)], dtype=object)
    if output == "probabilities":
        return probabilities.astype(np.float32)
    if output == "label":
        return np.array([classes[i] for i in probabilities.argmax(1)], dtype=object).reshape(len(probabilities))
    raise ClientError(400, f"output '{output}': this model's outputs are {', '.join(OUTPUTS)}")
