"""The HTTP API of `trainlab serve`: the Open Inference Protocol v2 routes, `/predict`, `/metadata` and the page at `/`.

Every error is a 4xx (or 500 for a fault of the server's own) with `{"error": message}`; nothing a client sends
stops the server. Requests larger than `max_request_bytes` get 413 before their body is read whole.
"""

from __future__ import annotations

import json
import time
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from trainlab.serve.batching import Batcher
from trainlab.serve.infer import ClientError, Infer, InferEndpoint, tensor_metadata
from trainlab.serve.model import BadInput, ServedModel, decode_image
from trainlab.serve.protocol import HEADER_LENGTH
from trainlab.utils.machine import package_version

MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_TOP = 100


def create_app(served: ServedModel, *, max_request_bytes: int = MAX_REQUEST_BYTES, max_batch: int = 1,
               batch_wait_ms: float = 0.0) -> FastAPI:  # fmt: skip
    """The server's routes for `served`; `max_batch` > 1 runs concurrent image requests together (batching.py)."""
    version = package_version("trainlab") or "unknown"
    app = FastAPIOffline(title=f"trainlab serve: {served.name}", version=version, static_url="/docs-assets",
                         description="The Open Inference Protocol v2 (/v2/...) and a simple /predict route for a trainlab run.")  # fmt: skip
    # FastAPIOffline: /docs (Swagger UI) and /redoc with their scripts served from here, not from a CDN
    def probabilities(parts: list[Any]) -> np.ndarray:
        return served.probabilities(served.batch_inputs(parts))

    batcher = Batcher(probabilities, max_batch, batch_wait_ms / 1000) if max_batch > 1 and served.kind == "image" else None
    app.state.batcher = batcher

    async def forward(inputs: Any) -> np.ndarray:
        return await batcher(inputs) if batcher is not None else await run_in_threadpool(probabilities, [inputs])

    infer = Infer(served, forward)
    app.add_middleware(InferEndpoint, infer=infer)
    app.add_middleware(SizeLimit, limit=max_request_bytes)  # added last: outermost, so it guards the infer route too
    name = served.name
    page = files("trainlab.serve").joinpath("page.html").read_text()

    @app.exception_handler(ClientError)
    async def client_error(request: Request, error: ClientError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        return JSONResponse({"error": f"{'.'.join(map(str, first['loc']))}: {first['msg']}"}, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"the server failed on this request ({type(error).__name__}: {error})"}, status_code=500)

    def model_named(model: str) -> None:
        if model != name:
            raise ClientError(404, f"no model '{model}': this server serves '{name}'")

    # ------------------------------------------------------------ Open Inference Protocol v2

    @app.get("/v2/health/live", tags=["v2"])
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"])
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2", tags=["v2"])
    def server_metadata() -> dict[str, Any]:
        return {"name": "trainlab", "version": version, "extensions": ["binary_tensor_data", "classification"]}

    @app.get("/v2/models/{model}", tags=["v2"])
    def model_metadata(model: str) -> dict[str, Any]:
        model_named(model)
        return {"name": name, "versions": [], "platform": f"trainlab-{served.backend}",
                "inputs": [tensor_metadata(served)], "outputs": [
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(served.classes)]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]}],
                "parameters": {"classes": served.classes, "kind": served.kind}}  # fmt: skip

    @app.get("/v2/models/{model}/ready", tags=["v2"])
    def model_ready(model: str) -> dict[str, Any]:
        model_named(model)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{model}/infer", tags=["v2"])
    async def infer_route(model: str, request: Request) -> Response:
        """Input tensors in (JSON, or binary after the JSON header), the model's outputs out: probabilities and labels."""
        model_named(model)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        body, headers = await infer.answer(await request.body(), content_type, request.headers.get(HEADER_LENGTH))
        return Response(body, headers=headers)

    # ------------------------------------------------------------ for people and scripts

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return served.metadata()

    @app.post("/predict")
    async def predict(request: Request, top: int = 5) -> dict[str, Any]:
        """Image files as multipart/form-data (field `file`, repeatable), or JSON `{"texts": [...]}` (or `{"text": "..."}`):
        the `top` classes of each with their probabilities."""
        started = time.perf_counter()
        if not 1 <= top <= MAX_TOP:
            raise ClientError(400, f"top={top}: expected 1..{MAX_TOP}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            if content_type == "multipart/form-data":
                names, inputs = await uploaded_images(served, request)
            elif content_type == "application/json":
                names, inputs = sent_texts(served, await request.body())
            else:
                raise ClientError(415, f"content type '{content_type or 'none'}': send image files as multipart/form-data "
                                       "(curl -F file=@cat.jpg) or texts as application/json ({\"texts\": [...]})")  # fmt: skip
        except BadInput as e:
            raise ClientError(400, str(e)) from None
        probabilities = await forward(inputs)
        order = np.argsort(-probabilities, axis=1)[:, :top]
        predictions = [
            {"input": input_name, "label": served.classes[row[0]],
             "top": [{"label": served.classes[i], "probability": float(p[i])} for i in row]}
            for input_name, row, p in zip(names, order, probabilities)
        ]  # fmt: skip
        return {"model": name, "backend": served.backend, "predictions": predictions,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}  # fmt: skip

    return app


async def uploaded_images(served: ServedModel, request: Request):
    if served.kind != "image":
        raise ClientError(400, 'this model classifies texts: send them as JSON, {"texts": ["..."]}')
    form = await request.form()
    try:
        uploads = [value for key, value in form.multi_items() if key == "file"]
        if not uploads or any(isinstance(value, str) for value in uploads):
            raise ClientError(400, "no image file: send each image as a file in the field 'file' (curl -F file=@cat.jpg)")
        names, images = [], []
        for upload in uploads:
            names.append(upload.filename or "upload")
            images.append(decode_image(await upload.read(), names[-1]))
    finally:
        await form.close()
    return names, served.image_inputs(images)


def sent_texts(served: ServedModel, body: bytes):
    if served.kind != "text":
        raise ClientError(400, "this model classifies images: send them as multipart files (curl -F file=@cat.jpg)")
    try:
        sent = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ClientError(400, f"the body is not JSON ({e})") from None
    texts = sent.get("texts", [sent["text"]] if "text" in sent else None) if isinstance(sent, dict) else None
    if not isinstance(texts, list) or not texts:
        raise ClientError(400, 'expected JSON {"texts": ["...", ...]} or {"text": "..."}')
    return [str(t) for t in texts], served.text_inputs(texts)


class SizeLimit:
    """Refuse a request body over `limit` bytes with 413: at once by its Content-Length, or while it streams."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": f"the request is larger than the server's limit of {self.limit:,} bytes (--max-request-mb)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class TooLarge(Exception):
    pass
