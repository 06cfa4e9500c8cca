"""Geometry: resize plans, output shapes and the kept transform, with hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorgate_preprocessing.geometry import ImageTransform, crop_box, input_shape, parse_bbox, plan_resize
from tensorgate_preprocessing.images import PixelArray
from tensorgate_preprocessing.spec import ImageSpec, ResizeType, TargetSize
from tensorgate_preprocessing.tensors import preprocess

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sides = st.integers(min_value=1, max_value=160)
resize_types = st.sampled_from(["SQUASH", "CROP", "FILL", "NETWORK"])


@st.composite
def specs(draw: st.DrawFn) -> ImageSpec:
    resize = draw(resize_types)
    target = str(draw(sides)) if resize == "NETWORK" else f"{draw(sides)}x{draw(sides)}"
    return ImageSpec(
        resize_type=resize,
        target_size=target,
        dimension_order=draw(st.sampled_from(["NCHW", "NCWH", "NHWC", "NWHC"])),
        color_channels=draw(st.sampled_from(["RGB", "BGR", "L"])),
        data_type=draw(st.sampled_from(["FLOAT32", "FLOAT16", "UINT8"])),
    )


@st.composite
def bboxes(draw: st.DrawFn) -> dict[str, float] | None:
    if draw(st.booleans()):
        return None
    xmin, xmax = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True)))
    ymin, ymax = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True)))
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def _expected_spatial(spec: ImageSpec, width: int, height: int) -> tuple[int, int]:
    size = spec.size
    assert size is not None
    if spec.resize_type is ResizeType.NETWORK:
        assert size.largest_side is not None
        scale = size.largest_side / max(width, height)
        return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))
    assert size.width is not None and size.height is not None
    return size.width, size.height


@FAST
@given(spec=specs(), width=sides, height=sides, bbox=bboxes(), seed=st.integers(0, 2**16))
def test_preprocess_output_shape_follows_the_spec(
    spec: ImageSpec, width: int, height: int, bbox: dict[str, float] | None, seed: int
) -> None:
    # Given any image, spec and bbox that covers at least a pixel
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    box = parse_bbox(bbox)
    try:
        left, top, right, bottom = crop_box(box, (width, height))
    except Exception:
        return  # sub-pixel bboxes are refused; test_refusals covers them

    # When it is preprocessed
    tensor, transform = preprocess(PixelArray(pixels), spec, bbox=bbox)

    # Then the tensor has N=1, the channels, and the planned size in the declared order
    out_width, out_height = _expected_spatial(spec, right - left, bottom - top)
    sizes = {"N": 1, "C": spec.channels, "H": out_height, "W": out_width}
    assert tensor.shape == tuple(sizes[axis] for axis in spec.dimension_order.value)
    assert transform.input_size == (out_width, out_height)
    declared = input_shape(spec)
    assert all(d is None or d == s for d, s in zip(declared, tensor.shape, strict=True))


@st.composite
def transforms(draw: st.DrawFn) -> ImageTransform:
    width, height = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    left, right = sorted(draw(st.lists(st.integers(0, width), min_size=2, max_size=2, unique=True)))
    top, bottom = sorted(draw(st.lists(st.integers(0, height), min_size=2, max_size=2, unique=True)))
    resize = ResizeType(draw(resize_types))
    if resize is ResizeType.NETWORK:
        target = TargetSize(largest_side=draw(st.integers(1, 1024)))
    else:
        target = TargetSize(width=draw(st.integers(1, 1024)), height=draw(st.integers(1, 1024)))
    plan = plan_resize((right - left, bottom - top), resize, target)
    return ImageTransform((width, height), (left, top, right, bottom), plan.resized, plan.offset, plan.input_size)


@settings(max_examples=300, deadline=None)
@given(transform=transforms(), corners=st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_transform_box_round_trip_is_within_one_pixel(transform: ImageTransform, corners: list[float]) -> None:
    # Given a box inside the part of the original image the network saw
    left, top, right, bottom = transform.visible_region()
    xs = sorted(left + (right - left) * c for c in corners[:2])
    ys = sorted(top + (bottom - top) * c for c in corners[2:])
    box = (xs[0], ys[0], xs[1], ys[1])

    # When it is mapped to the network input (normalised, as a detector outputs it) and back
    network = transform.to_network(box)
    width, height = transform.input_size
    normalized = (network[0] / width, network[1] / height, network[2] / width, network[3] / height)
    back = transform.normalized_to_original(normalized)

    # Then it lands within one pixel, and inside the network input
    assert max(abs(a - b) for a, b in zip(box, back, strict=True)) <= 1.0
    assert min(normalized) >= -1e-6 and max(normalized) <= 1 + 1e-6


@settings(max_examples=40, deadline=None)
@given(
    resize=st.sampled_from(["SQUASH", "CROP", "FILL"]),
    width=st.integers(40, 240),
    height=st.integers(40, 240),
    target=st.tuples(st.integers(24, 96), st.integers(24, 96)),
    place=st.tuples(st.floats(0.1, 0.6), st.floats(0.1, 0.6), st.floats(0.2, 0.4), st.floats(0.2, 0.4)),
)
def test_transform_matches_where_pixels_actually_land(
    resize: str, width: int, height: int, target: tuple[int, int], place: tuple[float, ...]
) -> None:
    # Given a dark rectangle on white, inside the region the network will see
    spec = ImageSpec(resize_type=resize, target_size=f"{target[0]}x{target[1]}", color_channels="L")
    tensor, transform = preprocess(PixelArray(np.full((height, width), 255, np.uint8)), spec)
    left, top, right, bottom = transform.visible_region()
    box = (
        left + (right - left) * place[0],
        top + (bottom - top) * place[1],
        left + (right - left) * (place[0] + place[2]),
        top + (bottom - top) * (place[1] + place[3]),
    )
    whole = [int(round(value)) for value in box]
    pixels = np.full((height, width), 255, np.uint8)
    pixels[whole[1] : whole[3], whole[0] : whole[2]] = 0

    # When it is preprocessed
    tensor, transform = preprocess(PixelArray(pixels), spec)

    # Then the darkness's centre and extent in the tensor are where the transform puts the rectangle
    darkness = 255.0 - tensor[0, :, :, 0].astype(np.float64) * 255.0 / spec.pixel_scaling
    columns, rows = darkness.sum(axis=0), darkness.sum(axis=1)
    centre = (
        (np.arange(columns.size) + 0.5) @ columns / columns.sum(),
        (np.arange(rows.size) + 0.5) @ rows / rows.sum(),
    )
    mapped = transform.to_network(whole)
    assert abs(centre[0] - (mapped[0] + mapped[2]) / 2) <= 0.5
    assert abs(centre[1] - (mapped[1] + mapped[3]) / 2) <= 0.5
    assert abs(columns.sum() / 255.0 / (mapped[3] - mapped[1]) - (mapped[2] - mapped[0])) <= 1.0


@pytest.mark.parametrize(
    ("cropped", "resize", "target", "resized", "offset", "input_size"),
    [
        ((1920, 1080), "SQUASH", (224, 224), (224, 224), (0, 0), (224, 224)),
        ((1920, 1080), "CROP", (224, 224), (398, 224), (87, 0), (224, 224)),
        ((1920, 1080), "FILL", (224, 224), (224, 126), (0, 0), (224, 224)),
        ((300, 600), "FILL", (100, 100), (50, 100), (0, 0), (100, 100)),  # Sense/Net's pad example
        ((300, 600), "CROP", (100, 100), (100, 200), (0, 50), (100, 100)),  # Sense/Net's crop example
        ((1920, 1080), "NETWORK", 512, (512, 288), (0, 0), (512, 288)),
        ((3, 1000), "NETWORK", 100, (1, 100), (0, 0), (1, 100)),
    ],
)
def test_plan_resize_follows_design(
    cropped: tuple[int, int],
    resize: str,
    target: tuple[int, int] | int,
    resized: tuple[int, int],
    offset: tuple[int, int],
    input_size: tuple[int, int],
) -> None:
    size = TargetSize(largest_side=target) if isinstance(target, int) else TargetSize(width=target[0], height=target[1])
    plan = plan_resize(cropped, ResizeType(resize), size)
    assert (plan.resized, plan.offset, plan.input_size) == (resized, offset, input_size)


def test_transform_maps_crop_and_bbox_back_to_original_pixels() -> None:
    # Given a 1000×500 image, bbox [100, 50, 900, 450] (800×400), CROP to 200×200: resized 400×200, offset 100
    transform = ImageTransform((1000, 500), (100, 50, 900, 450), (400, 200), (100, 0), (200, 200))

    # Then the network's full window is the centre 400×400 of the bbox, in original pixels
    assert transform.to_original((0, 0, 200, 200)) == (300.0, 50.0, 700.0, 450.0)
    assert transform.normalized_to_original((0.5, 0.5, 1.0, 1.0)) == (500.0, 250.0, 700.0, 450.0)
    assert transform.visible_region() == (300.0, 50.0, 700.0, 450.0)


def test_transform_visible_region_excludes_fill_padding() -> None:
    transform = ImageTransform((600, 300), (0, 0, 600, 300), (100, 50), (0, 0), (100, 100))
    assert transform.visible_region() == (0.0, 0.0, 600.0, 300.0)
    assert transform.to_original((0, 0, 100, 100)) == (0.0, 0.0, 600.0, 600.0)
