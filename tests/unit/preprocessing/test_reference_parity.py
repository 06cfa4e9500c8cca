"""The library against the plain reference: every resize type × channel order × dimension order × data type."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tensorgate_preprocessing.tensors import load_mean, preprocess

from .conftest import deviation, image_spec, npy
from .photos import photo_jpeg
from .reference import reference

RESIZES = {"SQUASH": "37x23", "CROP": "37x23", "FILL": "37x23", "NETWORK": "41"}
UPSCALES = {"SQUASH": "150x131", "CROP": "150x131", "FILL": "150x131", "NETWORK": "157"}
COLORS = ["RGB", "BGR", "L"]
ORDERS = ["NCHW", "NCWH", "NHWC", "NWHC"]
TYPES = ["FLOAT32", "FLOAT16", "UINT8"]

# Exact path vs float64 reference: Pillow resamples in two 8-bit passes that each round (≤ 1.0 together),
# the luma conversion rounds once more (≤ 0.5); FLOAT16's own rounding is ≤ 0.125 below 256.
EXACT_MAX = {"RGB": 1.05, "BGR": 1.05, "L": 1.5}
EXACT_MEAN = 0.4


def _spec_and_mean(resize: str, color: str, order: str, data_type: str, target: str):
    floating = data_type != "UINT8"
    spec = image_spec(
        resize_type=resize,
        target_size=target,
        color_channels=color,
        dimension_order=order,
        data_type=data_type,
        pixel_scaling=2.0 if floating else 255.0,
        mean_file="mean.npy" if floating else None,
    )
    if not floating:
        return spec, None
    channels = 1 if color == "L" else 3
    values = np.array([0.41, 0.52, 0.63][:channels])
    shape = tuple(channels if axis == "C" else 1 for axis in order[1:])
    return spec, load_mean(npy(values.reshape(shape)), spec)


@pytest.mark.parametrize(
    ("resize", "color", "order", "data_type"), list(itertools.product(RESIZES, COLORS, ORDERS, TYPES))
)
def test_preprocess_every_combination_matches_reference(
    resize: str, color: str, order: str, data_type: str, landscape_png: bytes, portrait_png: bytes
) -> None:
    for source, targets in ((landscape_png, RESIZES), (portrait_png, UPSCALES)):
        # Given an odd-sized image and one combination of the spec
        spec, mean = _spec_and_mean(resize, color, order, data_type, targets[resize])

        # When the library preprocesses it
        tensor, _ = preprocess(source, spec, mean=mean)

        # Then it matches the reference in shape, type and values
        expected = reference(source, spec, mean=mean)
        assert tensor.shape == expected.shape
        assert tensor.dtype == {"FLOAT32": np.float32, "FLOAT16": np.float16, "UINT8": np.uint8}[data_type]
        difference = deviation(tensor, expected, spec)
        assert difference.max() <= EXACT_MAX[color], (resize, color, order, data_type)
        assert difference.mean() <= EXACT_MEAN


@pytest.mark.parametrize("resize", list(RESIZES))
def test_preprocess_jpeg_reference_path_matches_reference(resize: str) -> None:
    # Given a JPEG decoded without the reduced-scale path
    data = photo_jpeg(203, 129, seed=5)
    spec = image_spec(resize_type=resize, target_size=RESIZES[resize])

    tensor, _ = preprocess(data, spec, jpeg_oversampling=None)

    difference = deviation(tensor, reference(data, spec), spec)
    assert difference.max() <= EXACT_MAX["RGB"]
    assert difference.mean() <= EXACT_MEAN


@pytest.mark.parametrize(
    "bbox",
    [
        {"xmin": 0.1, "ymin": 0.2, "xmax": 0.83, "ymax": 0.91},
        {"xmin": 0.0, "ymin": 0.0, "xmax": 0.5, "ymax": 1.0},
        {"xmin": 0.37, "ymin": 0.01, "xmax": 0.41, "ymax": 0.99},
    ],
)
@pytest.mark.parametrize("resize", list(RESIZES))
def test_preprocess_bbox_crops_first_like_reference(resize: str, bbox: dict[str, float], landscape_png: bytes) -> None:
    spec = image_spec(resize_type=resize, target_size=RESIZES[resize])

    tensor, transform = preprocess(landscape_png, spec, bbox=bbox)

    difference = deviation(tensor, reference(landscape_png, spec, bbox=bbox), spec)
    assert difference.max() <= EXACT_MAX["RGB"]
    assert transform.crop[0] == int(bbox["xmin"] * 97 + 0.5)
