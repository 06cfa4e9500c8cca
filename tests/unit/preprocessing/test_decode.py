"""Decoding: formats, modes, EXIF orientation, alpha, 16-bit, sources (bytes, base64, data URLs, pixel arrays)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, PixelArray, image_bytes, prepare_image
from tensorgate_preprocessing.tensors import preprocess

from .conftest import deviation, image_spec
from .photos import encode, photo, photo_jpeg
from .reference import reference

TOLERANCE = 1.05  # the exact path's two rounding passes (see test_reference_parity)
# Alpha compositing and 16-bit scaling round to 8 bits once more before resampling.
ROUNDED_ONCE_MORE = 1.55


def _same_as_reference(data: bytes, tolerance: float = TOLERANCE, **fields: object) -> None:
    spec = image_spec(**fields)
    tensor, _ = preprocess(data, spec)
    difference = deviation(tensor, reference(data, spec), spec)
    assert difference.max() <= tolerance


def _png_16_bit(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB or RGBA PNG written by hand (Pillow cannot save one)."""
    height, width, channels = pixels.shape
    color_type = {3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["PNG", "WEBP", "BMP", "TIFF", "JPEG"])
def test_prepare_image_each_format_matches_reference(kind: str) -> None:
    options = {"lossless": True} if kind == "WEBP" else {}
    _same_as_reference(encode(photo(67, 43, seed=1), kind, **options), resize_type="SQUASH")


def test_prepare_image_gif_uses_first_frame() -> None:
    # Given an animated GIF whose frames differ: red, then blue
    frames = [Image.new("RGB", (20, 10), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)

    tensor, _ = preprocess(buffer.getvalue(), image_spec(target_size="4x4", pixel_scaling=255.0))

    # Then the tensor is the first (red) frame
    assert np.allclose(tensor[0, :, :, 0], 255) and np.allclose(tensor[0, :, :, 2], 0)


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK", "LA", "RGBA", "PA", "I;16"])
def test_prepare_image_each_mode_matches_reference(mode: str) -> None:
    picture = photo(53, 41, seed=2)
    if mode in ("LA", "RGBA", "PA"):
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, 53).astype(np.uint8), (41, 1)))
        converted = picture.convert("P" if mode == "PA" else mode[:-1]).convert(mode)
        converted.putalpha(alpha)
        picture = converted
    elif mode == "I;16":
        picture = Image.fromarray((np.asarray(picture.convert("L")).astype(np.uint16) * 257 + 100).clip(0, 65535))
    else:
        picture = picture.convert(mode)
    kind = "TIFF" if mode in ("CMYK", "PA") else "PNG"
    tolerance = ROUNDED_ONCE_MORE if mode in ("LA", "RGBA", "PA", "I;16") else TOLERANCE
    _same_as_reference(encode(picture, kind), tolerance, resize_type="CROP", color_channels="RGB")


def test_prepare_image_palette_transparency_is_white() -> None:
    # Given a palette image whose index 0 is transparent
    picture = Image.new("P", (8, 8), 0)
    picture.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    picture.paste(1, (4, 0, 8, 8))
    data = encode(picture, "PNG", transparency=0)

    prepared = prepare_image(data, image_spec(target_size="8x8"))

    # Then the transparent half is white and the opaque half keeps its colour
    assert (prepared.pixels[:, :4] == 255).all()
    assert (prepared.pixels[:, 4:] == (200, 10, 10)).all()


def test_prepare_image_alpha_is_composited_onto_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 100
    rgba[..., 3] = 128  # half transparent red-ish over white
    data = encode(Image.fromarray(rgba, "RGBA"), "PNG")

    prepared = prepare_image(data, image_spec(target_size="4x4"))

    expected = np.round(np.array([100, 0, 0]) * 128 / 255 + 255 * (1 - 128 / 255))
    assert np.abs(prepared.pixels.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("channels", [3, 4])
def test_prepare_image_16_bit_color_png_matches_reference(channels: int) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, size=(19, 23, channels)).astype(np.uint16)
    if channels == 4:
        pixels[..., 3] = 65535
    data = _png_16_bit(pixels)

    spec = image_spec(target_size="23x19")
    tensor, _ = preprocess(data, spec)

    # Pillow keeps the high byte of 16-bit colour (floor(v / 256)); the reference divides by 257
    assert deviation(tensor, reference(data, spec), spec).max() <= 1.5


def test_prepare_image_16_bit_gray_is_scaled_not_clipped() -> None:
    gray = np.array([[0, 257, 32896, 65535]], np.uint16)
    data = encode(Image.fromarray(gray), "PNG")

    prepared = prepare_image(data, image_spec(target_size="4x1", color_channels="L"))

    assert prepared.pixels.tolist() == [[0, 1, 128, 255]]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("oversampling", [None, JPEG_OVERSAMPLING])
def test_prepare_image_exif_orientation_shows_upright(orientation: int, oversampling: float | None) -> None:
    # Given the same upright photo stored under each EXIF orientation
    data = photo_jpeg(320, 200, seed=6, orientation=orientation)
    spec = image_spec(resize_type="CROP", target_size="40x40")

    prepared = prepare_image(data, spec, jpeg_oversampling=oversampling)

    # Then every one comes out upright, like the reference (which uses ImageOps.exif_transpose)
    assert prepared.transform.original_size == (320, 200)
    assert prepared.decode_scale == (1 if oversampling is None else 2)
    tensor, _ = preprocess(data, spec, jpeg_oversampling=oversampling)
    difference = deviation(tensor, reference(data, spec), spec)
    assert difference.mean() <= (0.4 if oversampling is None else 1.0)
    assert difference.max() <= (TOLERANCE if oversampling is None else 8.0)


def test_prepare_image_bbox_applies_after_orientation() -> None:
    data = photo_jpeg(320, 200, seed=6, orientation=6)
    bbox = {"xmin": 0.0, "ymin": 0.0, "xmax": 0.5, "ymax": 0.25}

    prepared = prepare_image(data, image_spec(target_size="16x5"), bbox=bbox, jpeg_oversampling=None)

    assert prepared.transform.crop == (0, 0, 160, 50)


def test_image_bytes_reads_base64_and_data_urls() -> None:
    data = encode(photo(9, 7), "PNG")
    encoded = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode().rstrip("=")

    assert image_bytes(data) == data
    assert image_bytes(encoded) == data
    assert image_bytes(f"data:image/png;base64,{encoded}") == data
    assert image_bytes("\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))) == data
    assert image_bytes(urlsafe) == data


@pytest.mark.parametrize("color_space", ["rgb", "rgba", "bgr", "bgra"])
def test_prepare_image_pixel_array_color_spaces(color_space: str) -> None:
    # Given the same picture as Sense/Net pixel_values in each colour space (alpha is ignored)
    rgb = np.asarray(photo(31, 17, seed=8))
    pixels = rgb[:, :, ::-1] if color_space.startswith("bgr") else rgb
    if color_space.endswith("a"):
        pixels = np.concatenate([pixels, np.full((17, 31, 1), 7, np.uint8)], axis=2)
    spec = image_spec(resize_type="FILL", target_size="20x20")

    tensor, _ = preprocess(PixelArray(pixels, color_space), spec)

    expected = reference((rgb, "rgb"), spec)
    assert deviation(tensor, expected, spec).max() <= TOLERANCE


def test_prepare_image_pixel_array_accepts_gray_and_float() -> None:
    gray = np.arange(12, dtype=np.float64).reshape(3, 4) * 20
    prepared = prepare_image(PixelArray(gray), image_spec(target_size="4x3", color_channels="L"))
    assert prepared.pixels.tolist() == gray.astype(np.uint8).tolist()


def test_prepare_image_one_channel_input_to_rgb_repeats_it() -> None:
    data = encode(photo(30, 20).convert("L"), "PNG")
    prepared = prepare_image(data, image_spec(target_size="15x10", color_channels="RGB"))
    tensor, _ = preprocess(data, image_spec(target_size="15x10", color_channels="RGB"))

    assert prepared.pixels.ndim == 2  # resampled once, on one channel
    assert (tensor[0, :, :, 0] == tensor[0, :, :, 1]).all() and (tensor[0, :, :, 1] == tensor[0, :, :, 2]).all()
