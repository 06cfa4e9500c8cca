"""Pure geometry of DESIGN §3 (bbox crop, resize plans, kept transforms, tensor layouts); no numpy.

Coordinates are continuous pixel edges: the pixel with index ``i`` spans ``[i, i + 1)``. Pillow's
resampling maps edges to edges, so a box maps between image spaces by scale and offset alone.

- ``parse_bbox`` reads a request ``bbox`` ``{xmin, ymin, xmax, ymax}`` in [0, 1].
- ``parse_polygon`` reads a request ``polygon`` (at least 3 points ``{x, y}`` in [0, 1]);
  ``polygon_bounds`` is the box it crops to.
- ``crop_box`` turns it into whole pixels of the decoded, EXIF-oriented image (rounded half up).
- ``plan_resize`` applies the resize type to the cropped size: resized size, window offset, input size.
- ``ImageTransform`` is what stays with each image so that boxes map between the network input
  and the original image (``to_original`` / ``to_network``).
- ``resolve_target_size`` and ``input_shape`` read and write target sizes against model shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidBoundingBox, MissingTargetSize
from .spec import DimensionOrder, ImageSpec, ResizeType, TargetSize

Box = tuple[float, float, float, float]
Size = tuple[int, int]

BBOX_KEYS = ("xmin", "ymin", "xmax", "ymax")
MAX_POLYGON_POINTS = 1000
Point = tuple[float, float]


def round_half_up(value: float) -> int:
    """The rounding used for every pixel count (Python's `round` rounds half to even)."""
    return math.floor(value + 0.5)


@dataclass(frozen=True)
class NormalizedBox:
    """A request bbox: fractions of the image width and height, ``0 <= min < max <= 1``."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


def parse_bbox(value: NormalizedBox | Mapping[str, Any] | None) -> NormalizedBox | None:
    """Validate a request bbox; None means the whole image."""
    if value is None:
        return None
    if isinstance(value, NormalizedBox):
        return _check_box(value)
    if not isinstance(value, Mapping):
        raise InvalidBoundingBox("bbox must be an object with xmin, ymin, xmax and ymax between 0 and 1.")
    missing = [key for key in BBOX_KEYS if key not in value]
    if missing:
        raise InvalidBoundingBox(f"bbox is missing {', '.join(missing)}; it needs xmin, ymin, xmax and ymax.")
    unknown = sorted(set(value) - set(BBOX_KEYS))
    if unknown:
        raise InvalidBoundingBox(f"bbox has unknown fields {', '.join(unknown)}; it takes xmin, ymin, xmax, ymax.")
    numbers = {}
    for key in BBOX_KEYS:
        raw = value[key]
        if isinstance(raw, bool):
            raise InvalidBoundingBox(f"bbox {key} must be a number between 0 and 1, not {raw!r}.")
        try:
            numbers[key] = float(raw)
        except (TypeError, ValueError):
            raise InvalidBoundingBox(f"bbox {key} must be a number between 0 and 1, not {raw!r}.") from None
    return _check_box(NormalizedBox(**numbers))


def _check_box(box: NormalizedBox) -> NormalizedBox:
    for key in BBOX_KEYS:
        number = getattr(box, key)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise InvalidBoundingBox(f"bbox {key} is {number}; coordinates are fractions between 0 and 1.")
    if box.xmax <= box.xmin or box.ymax <= box.ymin:
        raise InvalidBoundingBox(
            f"bbox is empty (xmin {box.xmin}, xmax {box.xmax}, ymin {box.ymin}, ymax {box.ymax}); "
            "xmax must exceed xmin and ymax must exceed ymin."
        )
    return box


def parse_polygon(value: Sequence[Point] | Sequence[Mapping[str, Any]] | None) -> tuple[Point, ...] | None:
    """Validate a request polygon: 3 to 1000 points ``{x, y}`` (or ``(x, y)`` pairs) in [0, 1].

    Its bounding box must be a real box (``polygon_bounds``); None means no polygon.
    """
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidBoundingBox("polygon must be a list of points {x, y} between 0 and 1.")
    if not 3 <= len(value) <= MAX_POLYGON_POINTS:
        raise InvalidBoundingBox(
            f"polygon has {len(value)} point(s); it takes 3 to {MAX_POLYGON_POINTS} points {{x, y}}."
        )
    points: list[Point] = []
    for index, point in enumerate(value):
        if isinstance(point, Mapping):
            unknown = sorted(set(point) - {"x", "y"})
            if unknown or "x" not in point or "y" not in point:
                raise InvalidBoundingBox(f"polygon point {index} must be {{x, y}}, not {dict(point)!r}.")
            raw = (point["x"], point["y"])
        elif isinstance(point, Sequence) and not isinstance(point, str | bytes) and len(point) == 2:
            raw = (point[0], point[1])
        else:
            raise InvalidBoundingBox(f"polygon point {index} must be {{x, y}}, not {point!r}.")
        coordinates = []
        for axis, number in zip("xy", raw, strict=True):
            try:
                if isinstance(number, bool):
                    raise TypeError
                coordinate = float(number)
            except (TypeError, ValueError):
                raise InvalidBoundingBox(
                    f"polygon point {index} {axis} must be a number between 0 and 1, not {number!r}."
                ) from None
            if not math.isfinite(coordinate) or not 0.0 <= coordinate <= 1.0:
                raise InvalidBoundingBox(
                    f"polygon point {index} {axis} is {coordinate}; coordinates are fractions between 0 and 1."
                )
            coordinates.append(coordinate)
        points.append((coordinates[0], coordinates[1]))
    polygon = tuple(points)
    polygon_bounds(polygon)
    return polygon


def polygon_bounds(polygon: Sequence[Point]) -> NormalizedBox:
    """The polygon's bounding box: the region a polygon crops to."""
    xs = [x for x, _ in polygon]
    ys = [y for _, y in polygon]
    box = NormalizedBox(min(xs), min(ys), max(xs), max(ys))
    if box.xmax <= box.xmin or box.ymax <= box.ymin:
        raise InvalidBoundingBox("polygon has no area: its points must span some width and some height of the image.")
    return box


def crop_box(bbox: NormalizedBox | None, size: Size) -> tuple[int, int, int, int]:
    """The bbox in whole pixels of an image of ``size``; the whole image without a bbox."""
    width, height = size
    if bbox is None:
        return (0, 0, width, height)
    box = (
        round_half_up(bbox.xmin * width),
        round_half_up(bbox.ymin * height),
        round_half_up(bbox.xmax * width),
        round_half_up(bbox.ymax * height),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise InvalidBoundingBox(
            f"bbox covers less than one pixel of the {width}x{height} image; enlarge it or send the crop."
        )
    return box


@dataclass(frozen=True)
class ResizePlan:
    """Where the cropped image goes: resized to ``resized``, then the network sees the window at
    ``offset`` of size ``input_size`` (CROP: centre window; FILL: padded on the right/bottom)."""

    resized: Size
    offset: Size
    input_size: Size


def plan_resize(cropped: Size, resize_type: ResizeType, target: TargetSize) -> ResizePlan:
    """DESIGN §3 step 4 on a cropped image of size ``cropped`` (width, height)."""
    width, height = cropped
    if resize_type == ResizeType.NETWORK:
        if target.largest_side is None:
            raise MissingTargetSize("resize_type NETWORK needs target_size 'N' (the largest side).")
        scale = target.largest_side / max(width, height)
        resized = (max(1, round_half_up(width * scale)), max(1, round_half_up(height * scale)))
        return ResizePlan(resized, (0, 0), resized)
    if target.width is None or target.height is None:
        raise MissingTargetSize(f"resize_type {resize_type.value} needs target_size 'WxH'.")
    goal = (target.width, target.height)
    if resize_type == ResizeType.SQUASH:
        return ResizePlan(goal, (0, 0), goal)
    if resize_type == ResizeType.CROP:
        scale = max(goal[0] / width, goal[1] / height)
        resized = (max(goal[0], round_half_up(width * scale)), max(goal[1], round_half_up(height * scale)))
        offset = ((resized[0] - goal[0]) // 2, (resized[1] - goal[1]) // 2)
        return ResizePlan(resized, offset, goal)
    scale = min(goal[0] / width, goal[1] / height)
    resized = (
        min(goal[0], max(1, round_half_up(width * scale))),
        min(goal[1], max(1, round_half_up(height * scale))),
    )
    return ResizePlan(resized, (0, 0), goal)


@dataclass(frozen=True)
class ImageTransform:
    """How one original image became one network input, kept to map boxes back.

    ``original_size`` is the decoded, EXIF-oriented image; ``crop`` the request bbox in its pixels
    (the whole image without one); the crop was resized to ``resized`` and the network input is the
    ``input_size`` window at ``offset`` of it (pixels outside the resized image are padding).
    """

    original_size: Size
    crop: tuple[int, int, int, int]
    resized: Size
    offset: Size
    input_size: Size

    @property
    def scale(self) -> tuple[float, float]:
        """Network pixels per original pixel, horizontally and vertically."""
        return (
            self.resized[0] / (self.crop[2] - self.crop[0]),
            self.resized[1] / (self.crop[3] - self.crop[1]),
        )

    def to_original(self, box: Sequence[float]) -> Box:
        """A box in network-input pixels, as (x1, y1, x2, y2) in original image pixels."""
        scale_x, scale_y = self.scale
        return (
            self.crop[0] + (box[0] + self.offset[0]) / scale_x,
            self.crop[1] + (box[1] + self.offset[1]) / scale_y,
            self.crop[0] + (box[2] + self.offset[0]) / scale_x,
            self.crop[1] + (box[3] + self.offset[1]) / scale_y,
        )

    def to_network(self, box: Sequence[float]) -> Box:
        """A box in original image pixels, as network-input pixels."""
        scale_x, scale_y = self.scale
        return (
            (box[0] - self.crop[0]) * scale_x - self.offset[0],
            (box[1] - self.crop[1]) * scale_y - self.offset[1],
            (box[2] - self.crop[0]) * scale_x - self.offset[0],
            (box[3] - self.crop[1]) * scale_y - self.offset[1],
        )

    def normalized_to_original(self, box: Sequence[float]) -> Box:
        """A box normalised to the network input (fractions of its width and height)."""
        width, height = self.input_size
        return self.to_original((box[0] * width, box[1] * height, box[2] * width, box[3] * height))

    def visible_region(self) -> Box:
        """The part of the original image the network saw (excludes CROP's cut and FILL's padding)."""
        window = (
            max(0.0, -self.offset[0]),
            max(0.0, -self.offset[1]),
            min(float(self.input_size[0]), self.resized[0] - self.offset[0]),
            min(float(self.input_size[1]), self.resized[1] - self.offset[1]),
        )
        return self.to_original(window)

    def as_dict(self) -> dict[str, list[int]]:
        return {
            "original_size": list(self.original_size),
            "crop": list(self.crop),
            "resized": list(self.resized),
            "offset": list(self.offset),
            "input_size": list(self.input_size),
        }


def spatial_axes(order: DimensionOrder) -> str:
    """The per-sample axes (without N) as letters, for example ``"CHW"``."""
    return order.value[1:]


def hwc_permutation(order: DimensionOrder) -> tuple[int, int, int]:
    """The transpose taking an H×W×C pixel array to the sample layout of ``order``."""
    return tuple("HWC".index(axis) for axis in spatial_axes(order))  # type: ignore[return-value]


def sample_shape(image: ImageSpec, input_size: Size) -> tuple[int, int, int]:
    """One sample's shape (no N) in the input's dimension order."""
    sizes = {"C": image.channels, "W": input_size[0], "H": input_size[1]}
    return tuple(sizes[axis] for axis in spatial_axes(image.dimension_order))  # type: ignore[return-value]


Dimension = int | str | None


def input_shape(image: ImageSpec, target: TargetSize | None = None) -> list[Dimension]:
    """The model input shape this image spec produces, None for dynamic dimensions (N, NETWORK)."""
    target = target if target is not None else image.size
    width = height = None
    if target is not None and target.width is not None:
        width, height = target.width, target.height
    sizes: dict[str, Dimension] = {"N": None, "C": image.channels, "W": width, "H": height}
    return [sizes[axis] for axis in image.dimension_order.value]


def resolve_target_size(image: ImageSpec, model_shape: Sequence[Dimension] | None = None) -> TargetSize:
    """The declared target size, else the model input's fixed spatial dimensions (DESIGN §3 step 4)."""
    declared = image.size
    if declared is not None:
        return declared
    if image.resize_type == ResizeType.NETWORK:
        raise MissingTargetSize("resize_type NETWORK needs target_size 'N' (the largest side); none is declared.")
    if model_shape is None or len(model_shape) != 4:
        raise MissingTargetSize(
            "target_size is not declared and the model input shape is unknown; declare target_size 'WxH'."
        )
    dims = dict(zip(image.dimension_order.value, model_shape, strict=True))
    width, height = dims["W"], dims["H"]
    if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
        raise MissingTargetSize(
            f"target_size is not declared and the model input {list(model_shape)} has dynamic width or "
            "height; declare target_size 'WxH'."
        )
    return TargetSize(width=width, height=height)
