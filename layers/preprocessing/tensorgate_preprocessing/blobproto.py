"""Caffe's `.binaryproto` mean files (a serialised BlobProto) read with numpy alone.

The layer carries no protobuf runtime, and a BlobProto is small: this walks its wire format for
the fields Caffe writes (caffe.proto: num 1, channels 2, height 3, width 4 as varints; data 5 as
floats, double_data 8 as doubles, packed or not; shape 7 holding BlobShape.dim 1; NVCaffe's raw_data
12 in the storage type its raw_data_type 10 names) and skips the rest (diff 6, double_diff 9).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidMeanFile

# NVCaffe's raw_data_type values (DOUBLE, FLOAT, FLOAT16) and how their bytes read.
_RAW_DTYPES = {0: "<f8", 1: "<f4", 2: "<f2"}
_NOT_READABLE = "mean_file is not a readable Caffe .binaryproto (a BlobProto as compute_image_mean writes it)."


def read_blob_proto(data: bytes) -> np.ndarray:
    """The blob's values shaped as stored: `shape` when present, else num×channels×height×width."""
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    dims: list[int] | None = None
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    raw: bytes | None = None
    raw_type = 1
    for number, wire_type, value in _fields(data):
        if number in legacy and wire_type == 0:
            legacy[number] = int(value)  # type: ignore[call-overload]
        elif number == 7 and wire_type == 2:
            dims = [int(dim) for dim in _varints_of(bytes(value), 1)]  # type: ignore[arg-type]
        elif number == 5:
            floats.append(_numbers(value, wire_type, "<f4", 5))
        elif number == 8:
            doubles.append(_numbers(value, wire_type, "<f8", 1))
        elif number == 10 and wire_type == 0:
            raw_type = int(value)  # type: ignore[call-overload]
        elif number == 12 and wire_type == 2:
            raw = bytes(value)  # type: ignore[arg-type]
    shape = tuple(dims) if dims is not None else tuple(legacy[number] for number in (1, 2, 3, 4))
    if raw is not None:
        if raw_type not in _RAW_DTYPES:
            raise InvalidMeanFile(
                f"mean_file stores raw values of type {raw_type}; DOUBLE, FLOAT and FLOAT16 are read."
            )
        values = _numbers(raw, 2, _RAW_DTYPES[raw_type], 2)
    else:
        values = np.concatenate(doubles or floats) if (doubles or floats) else np.empty(0, np.float32)
    if not shape or values.size != math.prod(shape) or values.size == 0:
        raise InvalidMeanFile(
            f"mean_file holds {values.size} values for a blob of shape {list(shape)}; " + _NOT_READABLE
        )
    return values.astype(np.float32).reshape(shape)


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    fields: list[tuple[int, int, int | bytes]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise InvalidMeanFile(_NOT_READABLE)
        if wire_type == 0:
            value, position = _varint(data, position)
            fields.append((number, wire_type, value))
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise InvalidMeanFile(_NOT_READABLE)
            fields.append((number, wire_type, data[position : position + length]))
            position += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if position + size > len(data):
                raise InvalidMeanFile(_NOT_READABLE)
            fields.append((number, wire_type, data[position : position + size]))
            position += size
        else:
            raise InvalidMeanFile(_NOT_READABLE)
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise InvalidMeanFile(_NOT_READABLE)
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _varints_of(message: bytes, wanted: int) -> list[int]:
    """The values of one repeated varint field of a nested message, packed or not."""
    values: list[int] = []
    for number, wire_type, value in _fields(message):
        if number != wanted:
            continue
        if wire_type == 0:
            values.append(int(value))  # type: ignore[call-overload]
        elif wire_type == 2:
            position, packed = 0, bytes(value)  # type: ignore[arg-type]
            while position < len(packed):
                item, position = _varint(packed, position)
                values.append(item)
    return values


def _numbers(value: int | bytes, wire_type: int, dtype: str, scalar_wire_type: int) -> np.ndarray:
    if wire_type not in (2, scalar_wire_type) or not isinstance(value, bytes):
        raise InvalidMeanFile(_NOT_READABLE)
    if len(value) % np.dtype(dtype).itemsize:
        raise InvalidMeanFile(_NOT_READABLE)
    return np.frombuffer(value, dtype=dtype)
