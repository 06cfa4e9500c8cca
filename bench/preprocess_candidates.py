"""Decoders and resamplers measured against the preprocessing layer's own (bench/preprocess.py, the scan).

Each candidate is installable from PyPI as a binary wheel (`pip install pyvips pyvips-binary simplejpeg`;
opencv-python-headless comes with the dev extra); a missing one is skipped. Resamplers replace the layer's
resampling step (``images._resize``) inside the layer's own pipeline, so decoding, EXIF orientation, bbox,
colour and the resize geometry stay the layer's and only the filter differs; decoders are timed alone, at
the DCT scale the deviation bound allows.

- ``pyvips``: libvips (pyvips-binary wheel): ``reduceh``/``reducev`` with the linear (triangle) kernel,
  and JPEG shrink-on-load for the decode.
- ``opencv``: OpenCV's ``resize`` with ``INTER_AREA`` (its antialiased downscale; ``INTER_LINEAR``
  reads 4 pixels per output pixel and aliases), and ``imdecode`` with ``IMREAD_REDUCED_COLOR_n``.
- ``simplejpeg``: libjpeg-turbo's TurboJPEG API straight into numpy, DCT-scaled.
- Pillow-SIMD replaces Pillow itself (source only, built with AVX2), so it runs in its own interpreter:
  bench/preprocess.py ``--pillow-simd PYTHON``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image
from tensorgate_preprocessing import images

Resampler = Callable[[Image.Image, tuple[int, int], tuple[float, float, float, float]], Image.Image]


def _pyvips() -> Any:
    import pyvips

    # One thread and no operation cache: the figures are per core, and every call is a new image.
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    return pyvips


def _opencv() -> Any:
    import cv2

    cv2.setNumThreads(1)
    return cv2


def _whole_picture_plan(
    picture: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The full resize and the window of it that ``picture.resize(size, box=box)`` stands for.

    The layer resamples CROP's window straight from a fractional box; a resampler without a box
    resizes the whole picture and cuts the window out (the same result in the continuous geometry).
    None when either axis is enlarged (these resamplers only reduce; the layer's path takes over).
    """
    width, height = picture.size
    box_width, box_height = box[2] - box[0], box[3] - box[1]
    if box_width < size[0] or box_height < size[1]:
        return None
    full = (round(width * size[0] / box_width), round(height * size[1] / box_height))
    offset = (round(box[0] * size[0] / box_width), round(box[1] * size[1] / box_height))
    return full, offset


def vips_resampler() -> Resampler:
    pyvips = _pyvips()
    exact = images._resize

    def resize(picture: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
        plan = _whole_picture_plan(picture, size, box)
        if plan is None or (size == picture.size and box == (0, 0, *picture.size)):
            return exact(picture, size, box)
        (full_width, full_height), (left, top) = plan
        pixels = np.asarray(picture)
        bands = 1 if pixels.ndim == 2 else pixels.shape[2]
        vips = pyvips.Image.new_from_memory(pixels.data, picture.width, picture.height, bands, "uchar")
        if full_width != picture.width:
            vips = vips.reduceh(picture.width / full_width, kernel="linear")
        if full_height != picture.height:
            vips = vips.reducev(picture.height / full_height, kernel="linear")
        if (vips.width, vips.height) != size:
            vips = vips.extract_area(left, top, *size)
        out = np.ndarray(buffer=vips.write_to_memory(), dtype=np.uint8, shape=(vips.height, vips.width, bands))
        return Image.fromarray(out[:, :, 0] if bands == 1 else out, picture.mode)

    return resize


def opencv_resampler() -> Resampler:
    cv2 = _opencv()
    exact = images._resize

    def resize(picture: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
        plan = _whole_picture_plan(picture, size, box)
        if plan is None or (size == picture.size and box == (0, 0, *picture.size)):
            return exact(picture, size, box)
        (full_width, full_height), (left, top) = plan
        out = cv2.resize(np.asarray(picture), (full_width, full_height), interpolation=cv2.INTER_AREA)
        return Image.fromarray(np.ascontiguousarray(out[top : top + size[1], left : left + size[0]]), picture.mode)

    return resize


RESAMPLERS: dict[str, Callable[[], Resampler]] = {"pyvips": vips_resampler, "opencv": opencv_resampler}


def available_resamplers() -> dict[str, Resampler]:
    found = {}
    for name, make in RESAMPLERS.items():
        try:
            found[name] = make()
        except ImportError:
            continue
    return found


@contextmanager
def resampling_with(resampler: Resampler | None) -> Iterator[None]:
    """The layer's pipeline with its resampling step replaced (None: the layer's own, Pillow BILINEAR)."""
    if resampler is None:
        yield
        return
    exact = images._resize
    images._resize = resampler
    try:
        yield
    finally:
        images._resize = exact


def decoders(data: bytes, scale: int) -> dict[str, Callable[[], object]]:
    """Decode-only calls at 1/``scale`` (RGB) for every installed decoder, Pillow's ``draft`` first."""
    width, height = Image.open(io.BytesIO(data)).size
    reduced = (width // scale, height // scale)

    def pillow() -> object:
        picture = Image.open(io.BytesIO(data))
        picture.draft("RGB", reduced)
        picture.load()
        return picture

    calls: dict[str, Callable[[], object]] = {"Pillow": pillow}
    try:
        import simplejpeg

        calls["simplejpeg"] = lambda: simplejpeg.decode_jpeg(data, min_width=reduced[0], min_height=reduced[1])
    except ImportError:
        pass
    try:
        cv2 = _opencv()
        flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
        flags[8] = cv2.IMREAD_REDUCED_COLOR_8
        buffer = np.frombuffer(data, np.uint8)
        calls["opencv"] = lambda: cv2.imdecode(buffer, flags[scale])
    except ImportError:
        pass
    try:
        pyvips = _pyvips()
        calls["pyvips"] = lambda: pyvips.Image.new_from_buffer(data, "", shrink=scale).write_to_memory()
    except ImportError:
        pass
    return calls
