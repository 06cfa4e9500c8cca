"""One image to network-input pixels: decode, orient, flatten alpha, crop, colour, resize (DESIGN §3 steps 1-4).

``prepare_image(source, image_spec, bbox=..., target=...)`` returns a ``PreparedImage``: uint8 pixels
of exactly the network input's spatial size (H×W×3 in RGB order, or H×W for one channel) and the
``ImageTransform`` that maps boxes back. ``tensors.assemble`` then writes many of them into one batch.

The request region (step 2): a ``bbox`` crops to it; a ``polygon`` crops to its bounding box and,
with ``crop_uniform_background``, the pixels of that crop whose centres lie outside the polygon
(even-odd rule) become white. The mask is drawn on the full-resolution crop, so such requests take
the reference path.

Sources: raw file bytes; a base64 string, optionally a ``data:`` URL; or a ``PixelArray`` of raw pixels
(Sense/Net ``pixel_values`` with ``color_space`` rgb, rgba, bgr or bgra; an alpha channel is ignored,
as in Sense/Net). Files may be JPEG (also MPO), PNG, WebP, BMP, GIF (first frame) or TIFF (first page),
in any mode: grayscale, palette, CMYK, 16-bit (scaled by 1/257), with or without alpha (composited
onto white). EXIF orientation is applied before anything else, so bboxes and returned boxes are in the
pixels a viewer shows. Images over ``max_pixels`` are refused from their header, before decoding.

The reference semantics are a full decode and Pillow ``BILINEAR`` resampling. JPEGs take a faster
path when they are downscaled enough: libjpeg decodes them directly at 1/2, 1/4 or 1/8 scale
(Pillow ``draft``), keeping at least ``jpeg_oversampling`` times the resized size on both axes, and
Pillow resamples the rest; the reduction must divide the image sides and the bbox edges. It stays
within the bound documented in docs/preprocessing.md (mean absolute difference <= 1.0, maximum <= 8
on the 0-255 scale, for photographs); ``ImageSpec.resampling`` EXACT (a network's choice for line art
and documents) or ``jpeg_oversampling=None`` forces the reference path.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .errors import ImageTooLarge, InvalidBoundingBox, InvalidImage, PreprocessingError
from .geometry import (
    Box,
    ImageTransform,
    NormalizedBox,
    Point,
    ResizePlan,
    crop_box,
    parse_bbox,
    parse_polygon,
    plan_resize,
    polygon_bounds,
    resolve_target_size,
)
from .spec import ColorChannels, ImageSpec, ResamplingMode, ResizeType, TargetSize

DEFAULT_MAX_PIXELS = 64_000_000
"""Refuse images above 64 megapixels (8000×8000) unless the caller allows more."""

JPEG_OVERSAMPLING = 2.1
"""The DCT-scaled decode keeps at least this many decoded pixels per output pixel on each axis."""

# Multi-picture camera files (MPO) open through the JPEG plugin and report format "MPO".
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
COLOR_SPACES = ("rgb", "rgba", "bgr", "bgra")
WHITE = 255

_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*?),", re.IGNORECASE)
_ORIENTATION_TAG = 0x0112
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True)
class PixelArray:
    """Raw pixels: H×W×3 (rgb, bgr), H×W×4 (rgba, bgra; alpha ignored) or H×W grayscale, values 0-255."""

    pixels: Any
    color_space: str = "rgb"


ImageSource = bytes | bytearray | memoryview | str | PixelArray


@dataclass(frozen=True)
class PreparedImage:
    """Network-input pixels (uint8; H×W×3 RGB or H×W one channel) and the transform that made them.

    ``decode_scale`` is 2, 4 or 8 when the JPEG was decoded that many times smaller, else 1.
    """

    pixels: np.ndarray
    transform: ImageTransform
    decode_scale: int = 1


def image_bytes(source: bytes | bytearray | memoryview | str) -> bytes:
    """The file bytes of a raw or base64 source (with or without a ``data:`` URL prefix)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if not isinstance(source, str):
        raise InvalidImage("The image source must be file bytes, a base64 string or a pixel array.")
    text = source.strip()
    match = _DATA_URL.match(text)
    if match is not None:
        if ";base64" not in match.group(2).lower():
            raise InvalidImage("The data: URL must carry base64 content (data:image/jpeg;base64,...).")
        text = text[match.end() :]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        raise InvalidImage("The image source is a URL; fetch it and pass the bytes.")
    text = re.sub(r"\s+", "", text)
    if not text:
        raise InvalidImage("The image source is empty.")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("The image source is not valid base64.") from None


def prepare_image(
    source: ImageSource,
    image: ImageSpec,
    *,
    bbox: NormalizedBox | Mapping[str, Any] | None = None,
    polygon: Sequence[Point] | Sequence[Mapping[str, Any]] | None = None,
    crop_uniform_background: bool = False,
    target: TargetSize | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    jpeg_oversampling: float | None = JPEG_OVERSAMPLING,
) -> PreparedImage:
    """One source to the pixels of one network input (DESIGN §3 steps 1-4) and its transform.

    ``image.resampling`` EXACT forces the reference path, whatever ``jpeg_oversampling`` says.
    """
    if image.resampling is ResamplingMode.EXACT:
        jpeg_oversampling = None
    target = target if target is not None else resolve_target_size(image)
    box, outline = request_region(bbox, polygon, crop_uniform_background)
    if outline is not None:
        jpeg_oversampling = None
    gray = image.color_channels == ColorChannels.L
    if isinstance(source, PixelArray):
        picture = _from_pixel_array(source, max_pixels)
        return _resample(picture, 1, box, image.resize_type, target, gray, outline=outline)
    with _open(image_bytes(source), max_pixels) as opened:
        file_size = opened.size
        jpeg = opened.format in ("JPEG", "MPO")
        scale = orientation = 1
        if jpeg:
            # JPEG EXIF is parsed with the header, so the reduced decode is planned in the oriented
            # frame; other formats may store EXIF after the pixels and are read after loading.
            orientation = _orientation(opened)
            crop = crop_box(box, _oriented_size(file_size, orientation))
            plan = plan_resize((crop[2] - crop[0], crop[3] - crop[1]), image.resize_type, target)
            scale = _dct_scale(opened, crop, plan, jpeg_oversampling)
        picture = _decode(opened, scale, gray, max_pixels)
        if not jpeg:
            orientation = _orientation(opened)
    oriented = _oriented_size(file_size, orientation)
    if orientation in _ORIENTATIONS:
        picture = picture.transpose(_ORIENTATIONS[orientation])
    return _resample(picture, scale, box, image.resize_type, target, gray, oriented, outline)


def request_region(
    bbox: NormalizedBox | Mapping[str, Any] | None,
    polygon: Sequence[Point] | Sequence[Mapping[str, Any]] | None,
    crop_uniform_background: bool = False,
) -> tuple[NormalizedBox | None, tuple[Point, ...] | None]:
    """The box a request crops to, and the polygon whose outside turns white (None: nothing to mask)."""
    outline = parse_polygon(polygon)
    if outline is None:
        return parse_bbox(bbox), None
    if bbox is not None:
        raise InvalidBoundingBox("Send a bbox or a polygon, not both: a polygon crops to its own bounding box.")
    return polygon_bounds(outline), (outline if crop_uniform_background else None)


def polygon_mask(polygon: Sequence[Point], size: tuple[int, int], crop: tuple[int, int, int, int]) -> np.ndarray:
    """Which pixels of the ``crop`` window of an image of ``size`` have their centre inside ``polygon``.

    ``polygon`` is in fractions of ``size``; the answer is a boolean (crop height × crop width) array.
    Even-odd rule, an edge spanning ``min(y) <= y < max(y)`` (the classic ray-casting convention),
    computed one row of pixel centres at a time against every edge.
    """
    width, height = size
    left, top, right, bottom = crop
    xs = np.array([x * width for x, _ in polygon], dtype=np.float64)
    ys = np.array([y * height for _, y in polygon], dtype=np.float64)
    next_xs, next_ys = np.roll(xs, -1), np.roll(ys, -1)
    centres = (np.arange(top, bottom, dtype=np.float64) + 0.5)[:, None]
    spans = (ys > centres) != (next_ys > centres)
    rows, edges = np.nonzero(spans)
    y, x0, y0 = centres[rows, 0], xs[edges], ys[edges]
    crossings = (next_xs[edges] - x0) * (y - y0) / (next_ys[edges] - y0) + x0
    # A row meets the polygon's edges an even number of times, so a centre is inside exactly when an
    # odd number of crossings lie at or left of it: toggle at the first column whose centre is >= each.
    columns = right - left
    first = np.clip(np.ceil(crossings - left - 0.5), 0, columns).astype(np.intp)
    toggles = np.zeros((bottom - top, columns + 1), dtype=np.uint8)
    np.add.at(toggles, (rows, first), 1)
    return np.bitwise_xor.accumulate(toggles[:, :columns] & 1, axis=1).astype(bool)


def _whiten_outside(
    picture: Image.Image, polygon: Sequence[Point], size: tuple[int, int], crop: tuple[int, int, int, int]
) -> Image.Image:
    inside = polygon_mask(polygon, size, crop)
    if inside.all():
        return picture
    pixels = np.array(picture)
    pixels[~inside] = WHITE
    return Image.fromarray(pixels, picture.mode)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        opened = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLarge(_too_large_message(None, max_pixels)) from None
    except Exception:
        # Pillow's plugins raise many types on hostile input; all of them mean "not an image we read".
        raise InvalidImage("The file is not an image this service reads (JPEG, PNG, WebP, BMP, GIF or TIFF).") from None
    width, height = opened.size
    if width < 1 or height < 1:
        opened.close()
        raise InvalidImage("The image has no pixels.")
    if width * height > max_pixels:
        opened.close()
        raise ImageTooLarge(_too_large_message(opened.size, max_pixels))
    return opened


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in _SWAPS_AXES else size


def _too_large_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"the limit is {max_pixels / 1e6:g} megapixels"
    if size is None:
        return f"The image has too many pixels to decode safely; {limit}."
    megapixels = size[0] * size[1] / 1e6
    return f"The image is {size[0]}x{size[1]} pixels ({megapixels:.1f} megapixels); {limit}."


def _orientation(opened: Image.Image) -> int:
    try:
        value = opened.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        # A broken EXIF block is common in the wild; the pixels are still usable, unrotated.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _dct_scale(
    opened: Image.Image, crop: tuple[int, int, int, int], plan: ResizePlan, oversampling: float | None
) -> int:
    """The largest JPEG DCT reduction (1, 2, 4 or 8) that keeps ``oversampling`` on both axes.

    The reduction must also divide the image sides and the crop edges: a decoded pixel that straddles
    an edge (a partial last block, a bbox border) would be weighted as a whole one, and those edges
    showed the largest deviations from the reference.
    """
    if oversampling is None or opened.format not in ("JPEG", "MPO") or len(getattr(opened, "tile", ())) != 1:
        return 1
    reduction = min((crop[2] - crop[0]) / plan.resized[0], (crop[3] - crop[1]) / plan.resized[1])
    edges = (*crop, *opened.size)
    for scale in (8, 4, 2):
        if reduction >= scale * oversampling and all(edge % scale == 0 for edge in edges):
            return scale
    return 1


def _decode(opened: Image.Image, scale: int, gray: bool, max_pixels: int) -> Image.Image:
    """Load (at 1/scale for JPEG) and flatten to mode RGB or L; L when the source has one channel."""
    file_size = opened.size
    if scale > 1:
        opened.draft("L" if gray else "RGB", (file_size[0] // scale, file_size[1] // scale))
        expected = (-(-file_size[0] // scale), -(-file_size[1] // scale))
        if opened.size != expected:  # pragma: no cover - a Pillow that scales differently is our bug
            raise RuntimeError(f"draft reduced {file_size} to {opened.size}, not {expected}")
    try:
        opened.load()
        picture = _flatten(opened)
    except Image.DecompressionBombError:
        raise ImageTooLarge(_too_large_message(file_size, max_pixels)) from None
    except PreprocessingError:
        raise
    except Exception:
        # Truncated and corrupt files surface here as OSError, SyntaxError, ValueError, EOFError...
        raise InvalidImage("The image file is truncated or corrupt and cannot be decoded.") from None
    if gray and picture.mode == "RGB":
        picture = picture.convert("L")
    return picture


def _flatten(picture: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB or L: alpha onto white, palette expanded, 16-bit scaled to 8 bits."""
    mode = picture.mode
    if mode in ("RGB", "L"):
        return picture
    if mode == "1":
        return picture.convert("L")
    if mode == "P":
        if "transparency" not in picture.info and picture.palette is not None and picture.palette.mode == "RGB":
            return picture.convert("RGB")
        picture, mode = picture.convert("RGBA"), "RGBA"
    elif mode in ("PA", "RGBa"):
        picture, mode = picture.convert("RGBA"), "RGBA"
    elif mode == "La":
        picture, mode = picture.convert("LA"), "LA"
    if mode in ("RGBA", "LA"):
        return _onto_white(picture)
    if mode.startswith("I") or mode == "F":
        return _to_eight_bits(picture)
    return picture.convert("RGB")


def _onto_white(picture: Image.Image) -> Image.Image:
    color_mode = "RGB" if picture.mode == "RGBA" else "L"
    alpha = picture.getchannel("A")
    lowest, _ = alpha.getextrema()
    color = picture.convert(color_mode)
    if lowest == 255:
        return color
    canvas = Image.new(color_mode, picture.size, (WHITE,) * 3 if color_mode == "RGB" else WHITE)
    canvas.paste(color, (0, 0), alpha)
    return canvas


def _to_eight_bits(picture: Image.Image) -> Image.Image:
    values = np.asarray(picture)
    if picture.mode == "F":
        # Float images carry no declared range; they are read as 0-255, like Pillow's own conversion.
        eight = np.clip(np.rint(np.nan_to_num(values)), 0, 255)
    else:
        eight = (np.clip(values.astype(np.int64), 0, 65535) * 2 + 257) // 514
    return Image.fromarray(eight.astype(np.uint8), "L")


def _from_pixel_array(source: PixelArray, max_pixels: int) -> Image.Image:
    space = str(source.color_space).lower()
    if space not in COLOR_SPACES:
        raise InvalidImage(f"color_space {source.color_space!r} must be one of rgb, rgba, bgr, bgra.")
    try:
        pixels = np.asarray(source.pixels)
    except Exception:
        raise InvalidImage("pixel_values must be an array of numbers.") from None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3:
        expected = len(space)
        if pixels.shape[2] != expected:
            raise InvalidImage(f"pixel_values has {pixels.shape[2]} channels but color_space {space} needs {expected}.")
    elif pixels.ndim != 2:
        raise InvalidImage(
            f"pixel_values must be height x width x channels (or height x width); got shape {pixels.shape}."
        )
    height, width = pixels.shape[:2]
    if height < 1 or width < 1:
        raise InvalidImage("pixel_values has no pixels.")
    if height * width > max_pixels:
        raise ImageTooLarge(_too_large_message((width, height), max_pixels))
    pixels = _as_uint8(pixels)
    if pixels.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(pixels), "L")
    color = pixels[:, :, 2::-1] if space.startswith("bgr") else pixels[:, :, :3]
    return Image.fromarray(np.ascontiguousarray(color), "RGB")


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind not in "iuf":
        raise InvalidImage(f"pixel_values must hold numbers from 0 to 255, not {pixels.dtype}.")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise InvalidImage("pixel_values holds NaN or infinite values.")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise InvalidImage("pixel_values must hold numbers from 0 to 255.")
    return np.rint(pixels).astype(np.uint8) if pixels.dtype.kind == "f" else pixels.astype(np.uint8)


def _resample(
    picture: Image.Image,
    scale: int,
    bbox: NormalizedBox | None,
    resize_type: ResizeType,
    target: TargetSize,
    gray: bool,
    original_size: tuple[int, int] | None = None,
    outline: Sequence[Point] | None = None,
) -> PreparedImage:
    """Crop, colour and resize a decoded picture that is ``scale`` times smaller than the original.

    ``scale`` divides the original sides and the crop edges (``_dct_scale``), so original coordinates
    divided by it are exact decoded-pixel coordinates, whatever the EXIF orientation. ``outline`` (a
    polygon, only at scale 1) turns the crop's pixels outside it white.
    """
    if original_size is None:
        original_size = picture.size
    crop = crop_box(bbox, original_size)
    cropped = (crop[2] - crop[0], crop[3] - crop[1])
    plan = plan_resize(cropped, resize_type, target)
    if gray and picture.mode == "RGB":
        picture = picture.convert("L")

    # The bbox bounds the resampling filter (it "crops first"), so cut it out as whole decoded pixels.
    region: Box = (0.0, 0.0, cropped[0] / scale, cropped[1] / scale)
    if crop != (0, 0, *original_size):
        picture = picture.crop((crop[0] // scale, crop[1] // scale, crop[2] // scale, crop[3] // scale))
    if outline is not None:
        picture = _whiten_outside(picture, outline, original_size, crop)

    per_x = (region[2] - region[0]) / plan.resized[0]
    per_y = (region[3] - region[1]) / plan.resized[1]
    if resize_type == ResizeType.CROP:
        ox, oy = plan.offset
        width, height = plan.input_size
        source: Box = (
            region[0] + ox * per_x,
            region[1] + oy * per_y,
            region[0] + (ox + width) * per_x,
            region[1] + (oy + height) * per_y,
        )
        output = plan.input_size
    else:
        source, output = region, plan.resized
    picture = _resize(picture, output, source)

    if output != plan.input_size:
        canvas = Image.new(picture.mode, plan.input_size, (WHITE,) * 3 if picture.mode == "RGB" else WHITE)
        canvas.paste(picture, (0, 0))
        picture = canvas
    transform = ImageTransform(original_size, crop, plan.resized, plan.offset, plan.input_size)
    return PreparedImage(np.asarray(picture), transform, scale)


def _resize(picture: Image.Image, size: tuple[int, int], box: Box) -> Image.Image:
    if size == picture.size and box == (0, 0, *picture.size):
        return picture
    if all(float(value).is_integer() for value in box) and (box[2] - box[0], box[3] - box[1]) == size:
        return picture.crop(box)  # a whole-pixel window at scale 1 is a plain crop
    return picture.resize(size, Image.Resampling.BILINEAR, box=box)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A whole image file as the preprocessing reads it (step 1): EXIF orientation applied, mode RGB or L
    (alpha composited onto white). Raises InvalidImage or ImageTooLarge with a sentence naming the problem."""
    with _open(data, max_pixels) as opened:
        jpeg = opened.format in ("JPEG", "MPO")
        orientation = _orientation(opened) if jpeg else 1
        picture = _decode(opened, 1, False, max_pixels)
        if not jpeg:
            orientation = _orientation(opened)
    if orientation in _ORIENTATIONS:
        picture = picture.transpose(_ORIENTATIONS[orientation])
    return picture
