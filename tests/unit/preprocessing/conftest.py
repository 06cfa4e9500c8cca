"""Fixtures and helpers for the preprocessing tests: specs, encoded images, comparisons on the 0-255 scale."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from tensorgate_preprocessing.spec import ImageSpec

from .photos import encode, photo


def image_spec(**fields: Any) -> ImageSpec:
    return ImageSpec(**{"dimension_order": "NHWC", "target_size": "37x23", **fields})


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def deviation(actual: np.ndarray, expected: np.ndarray, image: ImageSpec) -> np.ndarray:
    """Absolute difference on the 0-255 pixel scale, whatever the scaling of the tensor."""
    difference = np.abs(actual.astype(np.float64) - expected)
    if image.data_type.value == "UINT8":
        return difference
    return difference * 255.0 / image.pixel_scaling


@pytest.fixture(scope="session")
def landscape_png() -> bytes:
    """97×61: odd sides, aspect ratio 1.59."""
    return encode(photo(97, 61, seed=3), "PNG")


@pytest.fixture(scope="session")
def portrait_png() -> bytes:
    """45×103: odd sides, aspect ratio 0.44."""
    return encode(photo(45, 103, seed=4), "PNG")
