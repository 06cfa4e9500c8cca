"""Non-image inputs given as nested arrays of numbers, checked against the network's input (dtype, shape).

Pure Python: the API's functions load no numpy. One sample's array leaves out the input's first (batch)
dimension; a dimension the model leaves open (a name or null) takes any size, a fixed one exactly its size.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tensorgate.errors import PayloadTooLarge, ValidationFailed
from tensorgate.messages import TensorSource

# Tensor inputs travel in the queue message (SQS takes 256 KiB with the rest of it).
MAX_TENSOR_JSON_BYTES = 200 * 1024
MAX_RANK = 8
FLOATS = {"float16", "float32", "float64"}
INTEGERS = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


def tensor_source(values: Any, spec: dict[str, Any], index: int, network_id: int | str) -> TensorSource:
    """The checked sample for network input `spec` (`{name, dtype, shape}` as the converter recorded it)."""
    field = f"inputs[{index}].tensor"
    name, dtype = spec.get("name"), str(spec.get("dtype"))
    what = f"Input {index} of network {network_id} ({name!r}, {dtype})"

    def refuse(reason: str, message: str) -> ValidationFailed:
        return ValidationFailed(f"{what}: {reason}", [{"field": field, "message": message}])

    if dtype not in FLOATS and dtype not in INTEGERS and dtype != "bool":
        raise refuse(f"this input takes {dtype} values, which a prediction cannot send as numbers.", "not numeric")
    shape = _shape(values, refuse)
    declared = spec.get("shape")
    if declared is not None:
        expected = list(declared)[1:]
        if (
            len(declared) == 0
            or len(shape) != len(expected)
            or any(
                isinstance(size, int) and size >= 0 and size != given
                for size, given in zip(expected, shape, strict=True)
            )
        ):
            wanted = ", ".join("any" if not isinstance(size, int) or size < 0 else str(size) for size in expected)
            raise refuse(
                f"one sample is an array of shape [{wanted}] (the input's shape without its batch dimension); "
                f"got [{', '.join(map(str, shape))}].",
                f"must have shape [{wanted}]",
            )
    for number in _flat(values):
        if dtype == "bool":
            if not isinstance(number, bool):
                raise refuse("this input takes true or false values.", "must hold booleans")
        elif isinstance(number, bool):
            raise refuse("this input takes numbers, not true or false.", "must hold numbers")
        elif dtype in INTEGERS:
            low, high = INTEGERS[dtype]
            if not isinstance(number, int) or not low <= number <= high:
                got = str(number)[:40]
                raise refuse(f"this input takes integers from {low} to {high}; got {got}.", f"must hold {dtype}")
        elif not _finite(number):
            raise refuse(f"this input takes finite numbers; got {str(number)[:40]}.", "must hold finite numbers")
    size = len(json.dumps(values, separators=(",", ":")))
    if size > MAX_TENSOR_JSON_BYTES:
        raise PayloadTooLarge(
            f"{what}: the array is {size} bytes of JSON, over the {MAX_TENSOR_JSON_BYTES} a prediction carries "
            "in its queue message; send fewer values per sample."
        )
    return TensorSource(values=values, dtype=dtype, shape=shape)


def _shape(values: Any, refuse: Any) -> list[int]:
    """The array's shape, refusing what is not a rectangular nesting of lists of numbers."""
    shape: list[int] = []
    level = values
    while isinstance(level, list):
        if not level:
            raise refuse("an array has an empty dimension.", "has an empty dimension")
        if len(shape) == MAX_RANK:
            raise refuse(f"arrays have at most {MAX_RANK} dimensions.", f"has more than {MAX_RANK} dimensions")
        shape.append(len(level))
        level = level[0]
    if not shape:
        raise refuse("send one sample as a nested array of numbers, e.g. [[0.1, 0.2], [0.3, 0.4]].", "not an array")
    _check_rectangular(values, shape, refuse)
    return shape


def _check_rectangular(values: Any, shape: list[int], refuse: Any) -> None:
    rows = [values]
    for depth, size in enumerate(shape):
        last = depth == len(shape) - 1
        following = []
        for row in rows:
            if not isinstance(row, list) or len(row) != size:
                raise refuse(
                    "the nested arrays are not rectangular: every row of one dimension has the same length.",
                    "not rectangular",
                )
            for item in row:
                if last and (isinstance(item, list) or not isinstance(item, int | float)):
                    raise refuse(f"arrays hold numbers only; got {json.dumps(item)[:40]}.", "holds a non-number")
            following.extend(row)
        rows = following


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer beyond any float
        return False


def _flat(values: Any) -> list[Any]:
    flat: list[Any] = []
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            flat.append(item)
    return flat
