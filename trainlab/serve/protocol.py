"""The Open Inference Protocol v2 (KServe, Triton, MLServer): request and response bodies, and tensors.

A tensor is `{name, shape, datatype, data}` with `data` flat in row-major order (nested lists are accepted
too), or, with the binary tensor data extension, raw little-endian bytes after the JSON header
(`parameters.binary_data_size`, the header's length in `Inference-Header-Content-Length`). BYTES elements
are strings in JSON, and 4-byte little-endian lengths followed by the bytes in binary.
Spec: https://github.com/kserve/open-inference-protocol
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMPY_TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip
DATATYPES = (*NUMPY_TYPES, "BYTES")


class ProtocolError(ValueError):
    """A request that breaks the protocol or does not fit the model: answered 400 with this message."""


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """The request and its input tensors as numpy arrays (BYTES as object arrays of str), by input name."""
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH}: expected a number of bytes, got '{header_length}'") from None
        if not 0 <= length <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {length} but the body has {len(body)} bytes")
        body, binary = body[:length], body[length:]
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"the body is not JSON ({e})") from None
    try:
        request = InferenceRequest.model_validate(raw)
    except ValidationError as e:
        raise ProtocolError(describe_validation(e)) from None
    tensors, offset = {}, 0
    for tensor in request.inputs:
        if tensor.name in tensors:
            raise ProtocolError(f"input '{tensor.name}' is given twice")
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise ProtocolError(f"input '{tensor.name}': binary_data_size {size} but {len(binary) - offset} bytes are left")
            tensors[tensor.name] = _from_bytes(tensor, binary[offset : offset + size])
            offset += size
        else:
            tensors[tensor.name] = _from_json(tensor)
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes after the tensors that no input's binary_data_size claims")
    return request, tensors


def _check_shape(tensor: RequestInput) -> int:
    if tensor.datatype not in DATATYPES:
        raise ProtocolError(f"input '{tensor.name}': unknown datatype '{tensor.datatype}' (expected one of {', '.join(DATATYPES)})")
    if any(n < 0 for n in tensor.shape):
        raise ProtocolError(f"input '{tensor.name}': shape {tensor.shape} has a negative dimension")
    return int(np.prod(tensor.shape, dtype=np.int64))


def _from_json(tensor: RequestInput) -> np.ndarray:
    count = _check_shape(tensor)
    if tensor.data is None:
        raise ProtocolError(f"input '{tensor.name}' has no data (nor a binary_data_size)")
    if tensor.datatype == "BYTES":
        flat = list(_flatten(tensor.data))
        if len(flat) != count:
            raise ProtocolError(f"input '{tensor.name}': shape {tensor.shape} holds {count} values, data has {len(flat)}")
        if not all(isinstance(x, str) for x in flat):
            raise ProtocolError(f"input '{tensor.name}': BYTES data must be strings")
        return np.array(flat, dtype=object).reshape(tensor.shape)
    try:  # numbers, flat or nested: numpy reads them at C speed (an image is thousands of them)
        values = np.asarray(tensor.data)
    except ValueError:  # nested lists of unequal lengths
        values = np.asarray(list(_flatten(tensor.data)), dtype=object)
    if values.dtype.kind not in "biuf":
        raise ProtocolError(f"input '{tensor.name}': {tensor.datatype} data must be numbers")
    if values.size != count:
        raise ProtocolError(f"input '{tensor.name}': shape {tensor.shape} holds {count} values, data has {values.size}")
    dtype = NUMPY_TYPES[tensor.datatype]
    if np.issubdtype(dtype, np.integer) and values.size:
        info = np.iinfo(dtype)
        if (values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0)) or values.min() < info.min or values.max() > info.max:
            raise ProtocolError(f"input '{tensor.name}': {tensor.datatype} data must be whole numbers in {info.min}..{info.max}")
    return values.astype(dtype).reshape(tensor.shape)


def _flatten(data: Any):
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


def _from_bytes(tensor: RequestInput, data: bytes) -> np.ndarray:
    count = _check_shape(tensor)
    if tensor.datatype == "BYTES":
        items, offset = [], 0
        while offset < len(data):
            if offset + 4 > len(data):
                raise ProtocolError(f"input '{tensor.name}': BYTES element {len(items)} is cut short")
            (length,) = struct.unpack_from("<I", data, offset)
            item = data[offset + 4 : offset + 4 + length]
            if len(item) != length:
                raise ProtocolError(f"input '{tensor.name}': BYTES element {len(items)} is cut short")
            try:
                items.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError(f"input '{tensor.name}': BYTES element {len(items)} is not UTF-8 text") from None
            offset += 4 + length
        if len(items) != count:
            raise ProtocolError(f"input '{tensor.name}': shape {tensor.shape} holds {count} values, the bytes hold {len(items)}")
        return np.array(items, dtype=object).reshape(tensor.shape)
    dtype = np.dtype(NUMPY_TYPES[tensor.datatype]).newbyteorder("<")
    if len(data) != count * dtype.itemsize:
        raise ProtocolError(f"input '{tensor.name}': shape {tensor.shape} of {tensor.datatype} is {count * dtype.itemsize} bytes, "
                            f"binary_data_size is {len(data)}")  # fmt: skip
    return np.frombuffer(data, dtype=dtype).reshape(tensor.shape)


def output_tensor(name: str, values: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    """An output tensor's JSON and, when `binary`, its raw bytes (then the JSON has binary_data_size, not data)."""
    datatype = "BYTES" if values.dtype == object else next(k for k, v in NUMPY_TYPES.items() if np.dtype(v) == values.dtype)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(values.shape)}
    if not binary:
        tensor["data"] = [str(x) for x in values.ravel()] if datatype == "BYTES" else values.ravel().tolist()
        return tensor, b""
    if datatype == "BYTES":
        raw = b"".join(struct.pack("<I", len(b)) + b for b in (str(x).encode() for x in values.ravel()))
    else:
        raw = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor, raw


def describe_validation(error: ValidationError) -> str:
    """The first problem of a pydantic error as 'field.path: message'."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}" + (f" ({len(error.errors()) - 1} more)" if len(error.errors()) > 1 else "")
