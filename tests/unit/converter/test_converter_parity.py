"""Parity maths: differences judged against the output's scale; generated inputs; name map; specs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.parity import ImageInput, Tolerance, compare_outputs, generate_input, input_shape
from functions.converter.signature import (
    DeclaredTensor,
    NameMap,
    Signature,
    TensorInfo,
    check_runtime_shapes,
    check_spec_against_signature,
)

DEFAULT = Tolerance()


def _one(reference, candidate, tolerance=DEFAULT):
    return compare_outputs({"out": np.asarray(reference)}, {"out": np.asarray(candidate)}, tolerance)[0]


def test_compare_outputs_tiny_untrained_logits_with_float_noise_pass():
    # MobileNetV2 with weights=None: logits near 1e-11; float32 noise is relative, so is the rule.
    reference = np.array([[1.0e-11, -2.0e-11, 3.0e-11]], dtype=np.float32)
    noisy = reference * (1 + np.float32(1e-6))

    assert _one(reference, noisy).passed


def test_compare_outputs_tiny_logits_that_are_wrong_fail_though_absolutely_tiny():
    reference = np.array([[1.0e-11, -2.0e-11, 3.0e-11]], dtype=np.float32)
    wrong = reference[:, ::-1].copy()  # a permuted layout: every value off by its own size

    result = _one(reference, wrong)

    assert not result.passed
    assert result.max_abs < 1e-10  # an absolute 1e-4 would have passed this
    assert result.max_rel == pytest.approx(2 / 3, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=20),
    st.floats(1e-9, 1e-2),
    st.floats(1e-12, 1e12),
)
def test_compare_outputs_verdict_does_not_depend_on_the_output_unit(values, relative_error, unit):
    reference = np.asarray(values, dtype=np.float64)
    candidate = reference + relative_error * np.max(np.abs(reference), initial=0.0)

    plain = _one(reference, candidate)
    scaled = _one(reference * unit, candidate * unit)

    assert plain.passed == scaled.passed or abs(relative_error - DEFAULT.max_rel_diff) < 1e-6 * DEFAULT.max_rel_diff


def test_compare_outputs_reports_numbers_and_allowed_bound():
    result = _one([0.5, 0.25, 0.25], [0.5, 0.2501, 0.2499])

    assert result.max_abs == pytest.approx(1e-4)
    assert result.scale == 0.5
    assert result.allowed == pytest.approx(0.5 * DEFAULT.max_rel_diff)
    assert not result.passed
    assert "max abs diff 0.0001 > allowed 5e-05" in result.describe()


def test_compare_outputs_absolute_slack_loosens_the_rule():
    assert _one([0.5, 0.25], [0.5, 0.2501], Tolerance(max_abs_diff=1e-3)).passed


def test_compare_outputs_integers_must_match_exactly():
    result = _one(np.array([1, 2, 3]), np.array([1, 2, 4]))

    assert not result.passed
    assert "1 of 3 integer values differ" in result.problem


def test_compare_outputs_nan_in_the_same_places_is_equal():
    assert _one([np.nan, 1.0], [np.nan, 1.0]).passed
    assert not _one([np.nan, 1.0], [0.0, 1.0]).passed


def test_compare_outputs_shape_mismatch_fails():
    result = _one(np.zeros((2, 3)), np.zeros((3, 2)))

    assert not result.passed
    assert "shape [3, 2] differs" in result.problem


def test_compare_outputs_all_zero_reference_needs_exact_zeros():
    assert _one(np.zeros(4), np.zeros(4)).passed
    assert not _one(np.zeros(4), np.full(4, 1e-30)).passed


def test_input_shape_batch_symbols_and_image_sizes():
    image = ImageInput(
        "NCHW", width=32, height=24, largest_side=None, channels=3, pixel_scaling=1.0, data_type="FLOAT32"
    )
    symbols: dict[str, int] = {}

    shape = input_shape(
        TensorInfo("image", "float32", ("batch", 3, None, None)),
        batch_size=2,
        symbols=symbols,
        declared=None,
        image=image,
    )

    assert shape == [2, 3, 24, 32]
    assert symbols == {"batch": 2}


def test_input_shape_declared_symbols_are_shared_between_inputs():
    symbols: dict[str, int] = {}
    tensor = TensorInfo("x", "float32", None)

    first = input_shape(tensor, batch_size=2, symbols=symbols, declared=("n", 7), image=None)
    second = input_shape(tensor, batch_size=2, symbols=symbols, declared=("n", 7), image=None)

    assert first == second == [2, 7]


def test_input_shape_unknown_rank_without_declaration_asks_for_test_input():
    with pytest.raises(ConversionFailed) as caught:
        input_shape(TensorInfo("x", "float32", None), batch_size=2, symbols={}, declared=None, image=None)

    assert caught.value.reason is Reason.INVALID_TEST_DATA
    assert "test_input.npz" in caught.value.message


def test_generate_input_image_applies_scaling_mean_and_layout():
    mean = np.array([0.5, 0.25, 0.0], dtype=np.float32).reshape(3, 1, 1)
    image = ImageInput("NCHW", 8, 6, None, 3, pixel_scaling=2.0, data_type="FLOAT32", mean=mean)

    values = generate_input(
        TensorInfo("image", "float32", (None, 3, 6, 8)), [2, 3, 6, 8], image, np.random.default_rng(0)
    )

    assert values.shape == (2, 3, 6, 8) and values.dtype == np.float32
    assert values[:, 0].min() >= -0.5 and values[:, 0].max() <= 1.5
    assert values[:, 2].min() >= 0.0 and values[:, 2].max() <= 2.0


def test_name_map_resolves_with_or_without_port():
    names = NameMap()
    names.add_tensor("probs", "output", ["StatefulPartitionedCall:0", "dense_1/Softmax"])

    assert names.resolve("probs") == "probs"
    assert names.resolve("StatefulPartitionedCall") == "probs"
    assert names.resolve("StatefulPartitionedCall:0") == "probs"
    assert names.resolve("dense_1/Softmax:0") == "probs"
    assert names.resolve("probs", "input") is None
    assert names.resolve("StatefulPartitionedCall:1") is None


def test_spec_static_check_reports_dtype_rank_and_dimension_mismatches():
    signature = Signature(
        inputs=(TensorInfo("x", "float32", ("batch", 4)),),
        outputs=(TensorInfo("y", "float32", ("batch", 3)), TensorInfo("z", "float32", (5, 2))),
    )
    declared = [
        DeclaredTensor("x", "x", "int64", (None, 4)),
        DeclaredTensor("y", "y", "float32", (None, 3, 1)),
        DeclaredTensor("z", "z", "float32", (5, 3)),
    ]

    problems = check_spec_against_signature(declared, signature)

    assert problems == [
        "'x' is declared int64 but the model's is float32",
        "'y' is declared with rank 3 (None, 3, 1) but the model's has rank 2 (batch, 3)",
        "'z' dimension 1 is declared 3 but the model's is 2",
    ]


def test_spec_runtime_check_symbols_must_agree():
    declared = [DeclaredTensor("x", "x", "float32", ("n",)), DeclaredTensor("y", "y", "float32", ("n",))]

    problems, symbols = check_runtime_shapes(declared, {"x": np.zeros(5, np.float32), "y": np.zeros(4, np.float32)})

    assert symbols == {"n": 5}
    assert problems == ["symbol 'n' was 5 elsewhere but 'y' dimension 0 was 4"]


def test_preprocessed_images_go_through_the_preprocessing_layer():
    from tensorgate_preprocessing.spec import ImageSpec, TargetSize

    from functions.converter.parity import preprocessed_images

    spec = ImageSpec(dimension_order="NCHW", resize_type="CROP", color_channels="BGR", pixel_scaling=255.0)
    mean = np.array([100.0, 110.0, 120.0], np.float32).reshape(3, 1, 1)
    image = ImageInput(
        "NCHW", 10, 6, None, 3, 255.0, "FLOAT32", mean=mean, spec=spec, target=TargetSize(width=10, height=6)
    )

    batch = preprocessed_images(image, 3, np.random.default_rng(1))

    assert batch.shape == (3, 3, 6, 10) and batch.dtype == np.float32
    pixels = batch + mean  # back to 0-255 pixels: whole numbers, as decoded and resized by the layer
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
    assert pixels.min() >= 0 and pixels.max() <= 255
