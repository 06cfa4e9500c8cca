"""A plain reference of DESIGN §3 for the tests: full Pillow decode, then float64 numpy, obvious code.

It shares nothing with the library but the spec models: its own decode handling, its own bbox and
resize arithmetic, and a bilinear resampler written from Pillow's definition (a triangle filter
stretched by the downscale factor, edges mapped to edges, weights renormalised at the borders).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps
from tensorgate_preprocessing.spec import ImageSpec, TargetSize


def decode(data: bytes) -> np.ndarray:
    """File bytes to float64 RGB (H×W×3), EXIF-oriented, alpha composited onto white, 16-bit / 257."""
    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(image).astype(np.float64) / 257.0
        return np.repeat(gray[:, :, None], 3, axis=2)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        alpha = rgba[:, :, 3:4] / 255.0
        return rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    return np.asarray(image.convert("RGB")).astype(np.float64)


def from_pixels(pixels: np.ndarray, color_space: str) -> np.ndarray:
    """Sense/Net pixel_values to float64 RGB; an alpha channel is ignored."""
    pixels = np.asarray(pixels).astype(np.float64)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if color_space.startswith("bgr"):
        return pixels[:, :, [2, 1, 0]]
    return pixels[:, :, :3]


def bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """out_size × in_size matrix of Pillow's BILINEAR (antialiased when downscaling) resampling."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    matrix = np.zeros((out_size, in_size))
    for out_index in range(out_size):
        center = (out_index + 0.5) * scale
        first = max(int(center - stretch + 0.5), 0)
        last = min(int(center + stretch + 0.5), in_size)
        for in_index in range(first, last):
            distance = abs((in_index - center + 0.5) / stretch)
            matrix[out_index, in_index] = max(0.0, 1.0 - distance)
        matrix[out_index] /= matrix[out_index].sum()
    return matrix


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    rows = bilinear_weights(pixels.shape[0], height)
    columns = bilinear_weights(pixels.shape[1], width)
    horizontal = np.tensordot(pixels, columns, axes=([1], [1]))  # H × C × width
    return np.tensordot(rows, horizontal, axes=([1], [0])).transpose(0, 2, 1)  # height × width × C


def half_up(value: float) -> int:
    return math.floor(value + 0.5)


def inside(polygon: list[tuple[float, float]], x: float, y: float) -> bool:
    """Ray casting (W. R. Franklin's pnpoly): an odd number of edges cross the ray to the right."""
    result = False
    previous = polygon[-1]
    for current in polygon:
        (xi, yi), (xj, yj) = current, previous
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        previous = current
    return result


def reference(
    source: bytes | tuple[np.ndarray, str],
    image: ImageSpec,
    *,
    bbox: dict[str, float] | None = None,
    polygon: list[dict[str, float]] | None = None,
    crop_uniform_background: bool = False,
    target: TargetSize | None = None,
    mean: np.ndarray | None = None,
) -> np.ndarray:
    """The input tensor (batch of one, float64 values before the final cast) DESIGN §3 defines."""
    pixels = decode(source) if isinstance(source, bytes) else from_pixels(*source)

    # 2. bbox (or the polygon's bounding box), in whole pixels rounded half up
    if polygon is not None:
        xs, ys = [point["x"] for point in polygon], [point["y"] for point in polygon]
        bbox = {"xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)}
    if bbox is not None:
        height, width = pixels.shape[:2]
        left, right = half_up(bbox["xmin"] * width), half_up(bbox["xmax"] * width)
        top, bottom = half_up(bbox["ymin"] * height), half_up(bbox["ymax"] * height)
        if polygon is not None and crop_uniform_background:
            outline = [(point["x"] * width, point["y"] * height) for point in polygon]
            pixels = pixels.copy()
            for row in range(top, bottom):
                for column in range(left, right):
                    if not inside(outline, column + 0.5, row + 0.5):
                        pixels[row, column] = 255.0
        pixels = pixels[top:bottom, left:right]

    # 3. colour channels
    if image.color_channels.value == "L":
        pixels = (0.299 * pixels[:, :, 0] + 0.587 * pixels[:, :, 1] + 0.114 * pixels[:, :, 2])[:, :, None]
    elif image.color_channels.value == "BGR":
        pixels = pixels[:, :, ::-1]

    # 4. resize
    target = target or image.size
    height, width = pixels.shape[:2]
    kind = image.resize_type.value
    if kind == "NETWORK":
        scale = target.largest_side / max(width, height)
        pixels = resize(pixels, max(1, half_up(width * scale)), max(1, half_up(height * scale)))
    elif kind == "SQUASH":
        pixels = resize(pixels, target.width, target.height)
    elif kind == "CROP":
        scale = max(target.width / width, target.height / height)
        new_width = max(target.width, half_up(width * scale))
        new_height = max(target.height, half_up(height * scale))
        pixels = resize(pixels, new_width, new_height)
        left, top = (new_width - target.width) // 2, (new_height - target.height) // 2
        pixels = pixels[top : top + target.height, left : left + target.width]
    else:  # FILL
        scale = min(target.width / width, target.height / height)
        new_width = min(target.width, max(1, half_up(width * scale)))
        new_height = min(target.height, max(1, half_up(height * scale)))
        canvas = np.full((target.height, target.width, pixels.shape[2]), 255.0)
        canvas[:new_height, :new_width] = resize(pixels, new_width, new_height)
        pixels = canvas

    # 5. scaling and mean (not for UINT8), 6. dimension order
    order = image.dimension_order.value[1:]
    tensor = pixels.transpose(["HWC".index(axis) for axis in order])
    if image.data_type.value == "UINT8":
        tensor = np.clip(np.floor(tensor + 0.5), 0, 255)
    else:
        tensor = tensor / 255.0 * image.pixel_scaling
        if mean is not None:
            tensor = tensor - mean
    return tensor[np.newaxis]
