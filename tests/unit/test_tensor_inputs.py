"""Arrays of numbers for non-image inputs: checked against the input's dtype and shape, with a sentence."""

from __future__ import annotations

from typing import Any

import pytest
from tensorgate.errors import PayloadTooLarge, ValidationFailed
from tensorgate.services.tensor_inputs import MAX_TENSOR_JSON_BYTES, tensor_source

FLOATS = {"name": "x", "dtype": "float32", "shape": ["N", 2, None]}


@pytest.mark.parametrize(
    ("values", "spec", "shape"),
    [
        ([[0.5, 1], [2, 3.25]], FLOATS, [2, 2]),  # a dimension the model leaves open takes any size
        ([[0.5, 1, 2], [2, 3.25, 4]], FLOATS, [2, 3]),
        ([0, 255, 7], {"name": "pixels", "dtype": "uint8", "shape": [1, 3]}, [3]),
        ([True, False], {"name": "mask", "dtype": "bool", "shape": ["N", 2]}, [2]),
        ([[1, 2], [3, 4], [5, 6]], {"name": "ids", "dtype": "int64", "shape": None}, [3, 2]),  # shape unknown
    ],
)
def test_tensor_source_fitting_the_input_keeps_values_dtype_and_shape(
    values: Any, spec: dict[str, Any], shape: list[int]
) -> None:
    source = tensor_source(values, spec, 0, 7)
    assert (source.values, source.dtype, source.shape) == (values, spec["dtype"], shape)


@pytest.mark.parametrize(
    ("values", "spec", "words"),
    [
        ([[0.5, 1]], FLOATS, "shape [2, any]"),
        ([0.5, 1], FLOATS, "got [2]"),
        ([[0.5, float("nan")], [1, 2]], FLOATS, "finite"),
        ([[0.5, 10**400], [1, 2]], FLOATS, "finite"),
        ([[0.5, True], [1, 2]], FLOATS, "not true or false"),
        ([0, 256, 7], {"name": "pixels", "dtype": "uint8", "shape": [1, 3]}, "from 0 to 255"),
        ([0, 1.5, 7], {"name": "pixels", "dtype": "uint8", "shape": [1, 3]}, "integers"),
        ([1, 0], {"name": "mask", "dtype": "bool", "shape": ["N", 2]}, "true or false"),
        (["a"], {"name": "text", "dtype": "object", "shape": ["N", 1]}, "object values"),
        (0.5, FLOATS, "nested array"),
        ([[]], FLOATS, "empty dimension"),
    ],
)
def test_tensor_source_not_fitting_the_input_is_refused_with_a_sentence(
    values: Any, spec: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        tensor_source(values, spec, 1, 7)
    assert words in refused.value.message and refused.value.message.startswith("Input 1 of network 7")
    assert refused.value.details[0]["field"] == "inputs[1].tensor"


def test_tensor_source_over_the_message_budget_is_refused_as_too_large() -> None:
    values = [0.123456789] * (MAX_TENSOR_JSON_BYTES // 10)
    with pytest.raises(PayloadTooLarge, match="bytes of JSON"):
        tensor_source(values, {"name": "x", "dtype": "float64", "shape": None}, 0, 7)
