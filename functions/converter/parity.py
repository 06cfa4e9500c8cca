"""Numerical parity: generated test inputs, per-output differences judged against the output's scale."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.signature import Dimension, TensorInfo

# An output passes when max|onnx - reference| <= max_abs_diff + max_rel_diff * max|reference|.
# Relative to the output's own scale: untrained logits near 1e-11 neither pass by default nor
# fail on float noise, and a wrong layout or padding (an O(1) relative error) always fails.
DEFAULT_MAX_REL_DIFF = 1e-4
DEFAULT_MAX_ABS_DIFF = 0.0
DEFAULT_BATCH_SIZE = 2
DEFAULT_DYNAMIC_SIZE = 8
MAX_GENERATED_ELEMENTS = 64 * 1024 * 1024


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float = DEFAULT_MAX_ABS_DIFF
    max_rel_diff: float = DEFAULT_MAX_REL_DIFF

    def bound(self, scale: float) -> float:
        return self.max_abs_diff + self.max_rel_diff * scale

    def to_dict(self) -> dict[str, float]:
        return {"max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}


@dataclass
class OutputDifference:
    """How far the ONNX model's output is from the reference's, for one output tensor."""

    name: str
    shape: list[int]
    max_abs: float | None
    max_rel: float | None
    scale: float | None
    allowed: float | None
    passed: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "scale": self.scale,
            "allowed": self.allowed,
            "passed": self.passed,
            "problem": self.problem,
        }

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.name!r}: {self.problem}"
        return (
            f"{self.name!r}: max abs diff {self.max_abs:.3g} > allowed {self.allowed:.3g} "
            f"(max rel diff {self.max_rel:.3g} of output scale {self.scale:.3g})"
        )


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tolerance: Tolerance
) -> list[OutputDifference]:
    """Compare every tensor of `reference` with the same-named tensor of `candidate`."""
    return [
        _compare_one(name, np.asarray(expected), candidate.get(name), tolerance) for name, expected in reference.items()
    ]


def _compare_one(name: str, expected: np.ndarray, actual: np.ndarray | None, tolerance: Tolerance) -> OutputDifference:
    shape = list(expected.shape)
    if actual is None:
        return OutputDifference(name, shape, None, None, None, None, False, "the converted model has no such output")
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        return OutputDifference(
            name,
            shape,
            None,
            None,
            None,
            None,
            False,
            f"shape {list(actual.shape)} differs from the reference's {shape}",
        )
    if expected.dtype.kind in "OSU" or actual.dtype.kind in "OSU":
        equal = bool(np.array_equal(expected, actual))
        return OutputDifference(name, shape, None, None, None, None, equal, None if equal else "string values differ")
    if expected.dtype.kind in "biu" and actual.dtype.kind in "biu":
        mismatched = int(np.count_nonzero(expected != actual))
        max_abs = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64)), initial=0.0))
        scale = float(np.max(np.abs(expected.astype(np.float64)), initial=0.0))
        return OutputDifference(
            name,
            shape,
            max_abs,
            _ratio(max_abs, scale),
            scale,
            0.0,
            mismatched == 0,
            None
            if mismatched == 0
            else f"{mismatched} of {expected.size} integer values differ (exact match required)",
        )
    reference_values = expected.astype(np.float64)
    values = actual.astype(np.float64)
    reference_nan, nan = np.isnan(reference_values), np.isnan(values)
    if not np.array_equal(reference_nan, nan):
        count = int(np.count_nonzero(reference_nan != nan))
        return OutputDifference(
            name, shape, None, None, None, None, False, f"NaN at {count} positions where the other has a number"
        )
    same = (reference_values == values) | (reference_nan & nan)
    with np.errstate(invalid="ignore"):
        differences = np.where(same, 0.0, np.abs(values - reference_values))
    max_abs = float(np.max(differences, initial=0.0))
    finite = reference_values[np.isfinite(reference_values)]
    scale = float(np.max(np.abs(finite), initial=0.0))
    allowed = tolerance.bound(scale)
    if not math.isfinite(max_abs):
        return OutputDifference(name, shape, None, None, scale, allowed, False, "infinite values differ")
    return OutputDifference(name, shape, max_abs, _ratio(max_abs, scale), scale, allowed, max_abs <= allowed)


def _ratio(difference: float, scale: float) -> float | None:
    if scale > 0:
        return difference / scale
    return 0.0 if difference == 0 else None


@dataclass
class ParityCase:
    """One run of both models on the same inputs."""

    inputs: str  # "generated" or "test_input"
    input_shapes: dict[str, list[int]]
    outputs: list[OutputDifference] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(output.passed for output in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "input_shapes": self.input_shapes,
            "passed": self.passed,
            "outputs": [output.to_dict() for output in self.outputs],
        }


# ---- test inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """An input fed by image preprocessing: where its axes are and how pixels become values.

    `spec` (a `tensorgate_preprocessing` ImageSpec) and `target` let test pictures go through the
    layer's own pipeline; without them, values are synthesised directly (`image_like_input`).
    """

    dimension_order: str
    width: int | None
    height: int | None
    largest_side: int | None
    channels: int
    pixel_scaling: float
    data_type: str
    mean: np.ndarray | None = None
    spec: Any = None
    target: Any = None

    def axis(self, letter: str) -> int:
        return self.dimension_order.index(letter)


def input_shape(
    tensor: TensorInfo,
    *,
    batch_size: int,
    symbols: dict[str, int],
    declared: tuple[Dimension, ...] | None,
    image: ImageInput | None,
) -> list[int]:
    """A concrete shape for a generated input: fixed dims kept, symbols shared, batch first."""
    shape = tensor.shape if tensor.shape is not None else declared
    if shape is None:
        raise ConversionFailed(
            Reason.INVALID_TEST_DATA,
            f"The input {tensor.name!r} has an unknown rank, so no test input can be generated for it; "
            "give its shape in input_spec or upload test_input.npz.",
            {"tensor": tensor.name},
        )
    concrete = []
    for axis, dim in enumerate(shape):
        declared_dim = declared[axis] if declared is not None and axis < len(declared) else None
        if isinstance(dim, int):
            concrete.append(dim)
            continue
        if isinstance(declared_dim, int):
            concrete.append(declared_dim)
            continue
        symbol = declared_dim if isinstance(declared_dim, str) else dim
        if isinstance(symbol, str) and symbol in symbols:
            concrete.append(symbols[symbol])
            continue
        size = _image_size(image, axis) if image is not None else None
        if size is None:
            size = batch_size if axis == 0 else DEFAULT_DYNAMIC_SIZE
        if isinstance(symbol, str):
            symbols[symbol] = size
        concrete.append(size)
    return concrete


def _image_size(image: ImageInput, axis: int) -> int | None:
    letter = image.dimension_order[axis] if axis < len(image.dimension_order) else ""
    if letter == "C":
        return image.channels
    if letter == "W":
        return image.width or image.largest_side
    if letter == "H":
        return image.height or (round(image.largest_side * 3 / 4) if image.largest_side else None)
    return None


def generate_input(
    tensor: TensorInfo, shape: list[int], image: ImageInput | None, rng: np.random.Generator
) -> np.ndarray:
    """Random values that look like what the model will see in production."""
    count = int(np.prod(shape)) if shape else 1
    if count > MAX_GENERATED_ELEMENTS:
        raise ConversionFailed(
            Reason.INVALID_TEST_DATA,
            f"A generated test input for {tensor.name!r} would have {count} values ({shape}); "
            "upload a smaller test_input.npz.",
        )
    dtype = tensor.dtype
    if dtype == "string":
        raise ConversionFailed(
            Reason.INVALID_TEST_DATA,
            f"The input {tensor.name!r} takes strings, which cannot be generated; upload test_input.npz.",
            {"tensor": tensor.name},
        )
    if image is not None:
        return image_like_input(shape, image, np.dtype(dtype), rng)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    numpy_dtype = np.dtype(dtype)
    if numpy_dtype.kind in "iu":
        high = 256 if numpy_dtype.itemsize == 1 and numpy_dtype.kind == "u" else 10
        return rng.integers(0, high, size=shape).astype(numpy_dtype)
    return rng.standard_normal(shape).astype(numpy_dtype)


def image_like_input(shape: list[int], image: ImageInput, dtype: np.dtype[Any], rng: np.random.Generator) -> np.ndarray:
    """Preprocessed-image-like values: smooth random pixels, scaled and mean-subtracted per the spec.

    Hook: once `tensorgate_preprocessing` exposes its image pipeline, images are generated as
    pictures and run through it instead (see `convert._preprocessed_image_inputs`).
    """
    height_axis, width_axis, channel_axis = image.axis("H"), image.axis("W"), image.axis("C")
    height, width, channels = shape[height_axis], shape[width_axis], shape[channel_axis]
    coarse = rng.uniform(0, 255, size=(shape[0], max(2, height // 4), max(2, width // 4), channels))
    rows = np.linspace(0, coarse.shape[1] - 1, height).round().astype(int)
    columns = np.linspace(0, coarse.shape[2] - 1, width).round().astype(int)
    pixels = coarse[:, rows][:, :, columns]
    pixels = np.clip(pixels + rng.normal(0, 8, size=pixels.shape), 0, 255)
    order = {"H": 1, "W": 2, "C": 3}
    permutation = [0] + [order[letter] for letter in image.dimension_order[1:]]
    tensor = np.transpose(pixels, permutation)
    if image.data_type == "UINT8":
        return tensor.round().astype(np.uint8)
    tensor = tensor / 255.0 * image.pixel_scaling
    if image.mean is not None:
        tensor = tensor - image.mean
    return tensor.astype(dtype)


def preprocessed_images(image: ImageInput, batch_size: int, rng: np.random.Generator) -> np.ndarray | None:
    """Test pictures run through the network's own preprocessing (DESIGN §3), as a batch.

    Pictures are smooth random colour fields with noise, larger than the target and of another
    aspect ratio, so decoding, resizing, cropping or padding, scaling and the mean all take part.
    None when the preprocessing layer is not importable.
    """
    if image.spec is None or image.target is None:
        return None
    try:
        from tensorgate_preprocessing.images import PixelArray
        from tensorgate_preprocessing.tensors import preprocess
    except ImportError:
        return None
    if image.target.largest_side is not None:
        width, height = round(image.target.largest_side * 1.5), round(image.target.largest_side * 1.1)
    else:
        width, height = round(image.target.width * 1.37) + 3, round(image.target.height * 1.21) + 5
    samples = []
    for _ in range(batch_size):
        coarse = rng.uniform(0, 255, size=(max(2, height // 6), max(2, width // 6), 3))
        rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
        columns = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
        pixels = np.clip(coarse[rows][:, columns] + rng.normal(0, 8, size=(height, width, 3)), 0, 255)
        array, _ = preprocess(PixelArray(pixels.astype(np.uint8)), image.spec, mean=image.mean, target=image.target)
        samples.append(array)
    return np.concatenate(samples)


def load_npz(path: Path, label: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as bundle:
            return {key: np.asarray(bundle[key]) for key in bundle.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} cannot be read as a NumPy .npz archive (object arrays are refused): {error}.",
            {"file": label},
        ) from None


def to_json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
