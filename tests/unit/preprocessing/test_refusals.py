"""Refusals: each bad input raises its domain error, derived from PreprocessingError, with a readable sentence."""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from tensorgate_preprocessing.errors import (
    ImageTooLarge,
    InvalidBoundingBox,
    InvalidImage,
    InvalidMeanFile,
    MissingTargetSize,
    PreprocessingError,
)
from tensorgate_preprocessing.geometry import resolve_target_size
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, PixelArray, prepare_image
from tensorgate_preprocessing.spec import ImageSpec
from tensorgate_preprocessing.tensors import load_mean

from .conftest import image_spec, npy
from .photos import encode, photo, photo_jpeg


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height pixels: a few dozen bytes that would decode to gigabytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    idat_body = b"IDAT" + zlib.compress(b"\x00" * 1024)
    idat = struct.pack(">I", 1024) + idat_body + struct.pack(">I", zlib.crc32(idat_body) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat


def _refused(error_type: type[PreprocessingError], call, *args, **kwargs) -> str:
    with pytest.raises(error_type) as caught:
        call(*args, **kwargs)
    message = caught.value.message
    assert isinstance(caught.value, PreprocessingError)
    assert message.endswith(".") and len(message.split()) >= 4  # a sentence, not a code
    return message


SPEC = image_spec()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"%PDF-1.4 a document",
        b"GIF89a",
        encode(photo(8, 8), "PNG")[:20],
    ],
)
def test_prepare_image_not_an_image_is_refused(data: bytes) -> None:
    message = _refused(InvalidImage, prepare_image, data, SPEC)
    assert "image" in message.lower()


def test_prepare_image_eps_is_not_opened() -> None:
    # EPS would run Ghostscript: only the listed formats are ever tried
    _refused(InvalidImage, prepare_image, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", SPEC)


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
@pytest.mark.parametrize("oversampling", [None, JPEG_OVERSAMPLING])
def test_prepare_image_truncated_file_is_refused(kind: str, oversampling: float | None) -> None:
    data = photo_jpeg(400, 304) if kind == "JPEG" else encode(photo(400, 304), "PNG")
    message = _refused(InvalidImage, prepare_image, data[: len(data) * 2 // 3], SPEC, jpeg_oversampling=oversampling)
    assert "truncated or corrupt" in message


@pytest.mark.parametrize(("width", "height"), [(9_000, 8_000), (100_000, 100_000)])
def test_prepare_image_decompression_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    # Given a hundred bytes claiming tens of megapixels or ten gigapixels
    data = _png_header_only(width, height)

    message = _refused(ImageTooLarge, prepare_image, data, SPEC)

    assert "the limit is 64 megapixels" in message
    if width == 9_000:
        assert "9000x8000 pixels (72.0 megapixels)" in message


def test_prepare_image_pixel_limit_is_configurable() -> None:
    data = encode(photo(40, 30), "PNG")
    _refused(ImageTooLarge, prepare_image, data, SPEC, max_pixels=1000)
    assert prepare_image(data, SPEC, max_pixels=1200).pixels.shape == (23, 37, 3)


def test_prepare_image_pixel_array_over_limit_is_refused() -> None:
    pixels = np.zeros((100, 100, 3), np.uint8)
    _refused(ImageTooLarge, prepare_image, PixelArray(pixels), SPEC, max_pixels=9_999)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("!!!not base64!!!", "base64"),
        ("data:image/png,rawpercentencoded", "base64"),
        ("https://example.com/cat.jpg", "URL"),
        ("   ", "empty"),
        (PixelArray(np.zeros((4, 4, 3), np.uint8), "hsv"), "color_space"),
        (PixelArray(np.zeros((4, 4, 4), np.uint8), "rgb"), "channels"),
        (PixelArray(np.zeros((4,), np.uint8), "rgb"), "shape"),
        (PixelArray(np.zeros((0, 4, 3), np.uint8), "rgb"), "no pixels"),
        (PixelArray(np.full((4, 4, 3), 300.0), "rgb"), "0 to 255"),
        (PixelArray(np.full((4, 4, 3), np.nan), "rgb"), "NaN"),
        (PixelArray(np.array([["a"]]), "rgb"), "numbers"),
    ],
)
def test_prepare_image_bad_sources_are_refused(source: object, fragment: str) -> None:
    message = _refused(InvalidImage, prepare_image, source, SPEC)
    assert fragment in message


@pytest.mark.parametrize(
    ("bbox", "fragment"),
    [
        ({"xmin": -0.1, "ymin": 0, "xmax": 0.5, "ymax": 0.5}, "between 0 and 1"),
        ({"xmin": 0, "ymin": 0, "xmax": 1.2, "ymax": 0.5}, "between 0 and 1"),
        ({"xmin": 0.5, "ymin": 0, "xmax": 0.5, "ymax": 0.5}, "empty"),
        ({"xmin": 0.6, "ymin": 0, "xmax": 0.5, "ymax": 0.5}, "empty"),
        ({"xmin": 0, "ymin": 0, "xmax": 0.5}, "missing ymax"),
        ({"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": "half"}, "number"),
        ({"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": True}, "number"),
        ({"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": float("nan")}, "between 0 and 1"),
        ({"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": 0.5, "zmax": 1}, "unknown"),
        ({"xmin": 0.5, "ymin": 0.5, "xmax": 0.501, "ymax": 0.9}, "less than one pixel"),
        ([0, 0, 1, 1], "object"),
    ],
)
def test_prepare_image_bad_bbox_is_refused(bbox: object, fragment: str) -> None:
    data = encode(photo(40, 30), "PNG")
    message = _refused(InvalidBoundingBox, prepare_image, data, SPEC, bbox=bbox)
    assert fragment in message


NCHW = image_spec(dimension_order="NCHW", target_size="8x6", mean_file="mean.npy")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (npy(np.ones((1, 1, 3))), "(3, 1, 1)"),  # NHWC layout given to an NCHW input
        (npy(np.ones(3)), "(3, 1, 1)"),  # a bare vector broadcasts against W, not C
        (npy(np.ones((3, 7, 8))), "does not broadcast"),
        (npy(np.ones((4, 1, 1))), "does not broadcast"),
        (npy(np.ones((2, 3, 6, 8))), "at most 3-dimensional"),
        (npy(np.array([[["a"]]])), "integers or floats"),
        (npy(np.array([1.0, np.nan, 2.0]).reshape(3, 1, 1)), "NaN"),
        (b"not npy", "not a readable .npy"),
        (npy(np.ones((3, 1, 1)))[:-4], "not a readable .npy"),
    ],
)
def test_load_mean_bad_file_is_refused(data: bytes, fragment: str) -> None:
    message = _refused(InvalidMeanFile, load_mean, data, NCHW)
    assert fragment in message


def test_load_mean_pickled_objects_are_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    message = _refused(InvalidMeanFile, load_mean, buffer.getvalue(), NCHW)
    assert "allow_pickle=False" in message
    assert pickle  # the payload never reaches pickle.loads: np.load runs with allow_pickle=False


def test_load_mean_npz_archive_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, mean=np.ones((3, 1, 1)))
    _refused(InvalidMeanFile, load_mean, buffer.getvalue(), NCHW)


@pytest.mark.parametrize(
    ("shape", "order"),
    [((3, 1, 1), "NCHW"), ((3, 6, 8), "NCHW"), ((1, 1, 3), "NHWC"), ((3,), "NHWC"), ((6, 8, 3), "NHWC"),
     ((3, 8, 6), "NCWH"), ((8, 6, 3), "NWHC"), ((1, 3, 1, 1), "NCHW"), ((), "NCHW")],
)  # fmt: skip
def test_load_mean_broadcastable_shapes_are_accepted(shape: tuple[int, ...], order: str) -> None:
    spec = image_spec(dimension_order=order, target_size="8x6", mean_file="mean.npy")
    mean = load_mean(npy(np.full(shape, 0.5, np.float64)), spec)
    assert mean.dtype == np.float32 and mean.ndim == 3


def test_load_mean_network_input_takes_per_channel_means_only() -> None:
    spec = image_spec(dimension_order="NCHW", resize_type="NETWORK", target_size="64", mean_file="m.npy")
    assert load_mean(npy(np.ones((3, 1, 1))), spec).shape == (3, 1, 1)
    _refused(InvalidMeanFile, load_mean, npy(np.ones((3, 64, 64))), spec)


def test_resolve_target_size_dynamic_model_without_declaration_is_refused() -> None:
    spec = ImageSpec(dimension_order="NHWC")
    message = _refused(MissingTargetSize, resolve_target_size, spec, [None, None, None, 3])
    assert "declare target_size" in message
    assert resolve_target_size(spec, ["batch", 299, 301, 3]).width == 301
