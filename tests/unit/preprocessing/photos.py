"""Synthetic photographs for the tests: 1/f colour texture, soft-edged objects, sensor grain, JPEG q90.

Natural images have amplitude spectra close to 1/f; this is the content the fast path's deviation
bound is stated for. Line art (hard 1-pixel edges, saturated colours on white) is generated too, to
show where the bound does not hold.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _pink_noise(height: int, width: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    frequency_y = np.fft.fftfreq(height)[:, None]
    frequency_x = np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(frequency_x, frequency_y)
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape)) / frequency**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height, width))
    return field / field.std()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small_height, small_width = min(height, 768), min(width, 1024)
    luma = _pink_noise(small_height, small_width, rng, 1.0)
    red_green, blue_yellow = (_pink_noise(small_height, small_width, rng, 1.3) for _ in range(2))
    channels = [luma + 0.35 * red_green, luma - 0.2 * red_green - 0.2 * blue_yellow, luma + 0.4 * blue_yellow]
    base = np.clip(128 + 42 * np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    picture = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(picture)
    for _ in range(25):
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        right = left + int(rng.integers(max(1, width // 30), max(2, width // 5)))
        bottom = top + int(rng.integers(max(1, height // 30), max(2, height // 5)))
        color = tuple(int(value) for value in rng.integers(20, 236, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((left, top, right, bottom), fill=color)
    picture = picture.filter(ImageFilter.GaussianBlur(max(1.0, width / 1600)))
    grain = rng.normal(0, 3, size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(picture) + grain, 0, 255).astype(np.uint8))


def line_art(width: int, height: int) -> Image.Image:
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for left in range(0, width, 37):
        draw.line((left, 0, left, height), fill=(0, 0, 0), width=3)
    for top in range(0, height, 53):
        draw.rectangle((0, top, width, top + 10), fill=(200, 30, 30))
    for top in range(0, height, 40):
        draw.text((10, top), "Tensorgate serverless inference " * 8, fill=(0, 0, 255))
    return picture


def encode(picture: Image.Image, kind: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


@lru_cache(maxsize=64)
def photo_jpeg(width: int, height: int, seed: int = 0, orientation: int = 1) -> bytes:
    """A q90 4:2:0 JPEG; with ``orientation`` the pixels are stored so that EXIF turns them upright."""
    picture = photo(width, height, seed)
    exif = Image.Exif()
    if orientation != 1:
        picture = picture.transpose(_STORE[orientation])
        exif[0x0112] = orientation
    return encode(picture, "JPEG", quality=90, exif=exif.tobytes())


# The inverse of each EXIF orientation: storing an upright picture so that a viewer shows it upright.
_STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
