"""A request polygon (DESIGN §3 step 2): crops to its bounding box; with crop_uniform_background the
pixels of that crop outside it turn white. Checked against the plain reference's own ray casting."""

from __future__ import annotations

import numpy as np
import pytest
from tensorgate_preprocessing.errors import InvalidBoundingBox
from tensorgate_preprocessing.images import polygon_mask, prepare_image
from tensorgate_preprocessing.tensors import preprocess

from .conftest import deviation, image_spec
from .photos import encode, photo, photo_jpeg
from .reference import inside, reference

RESIZES = {"SQUASH": "37x23", "CROP": "37x23", "FILL": "37x23", "NETWORK": "41"}
# Same bounds as the bbox parity test: two 8-bit resampling passes that each round.
EXACT_MAX = 1.05
EXACT_MEAN = 0.4

TRIANGLE = [{"x": 0.12, "y": 0.81}, {"x": 0.53, "y": 0.07}, {"x": 0.91, "y": 0.77}]
# Concave (an arrow head) and listed clockwise: the even-odd rule does not care about direction.
CONCAVE = [
    {"x": 0.08, "y": 0.13},
    {"x": 0.47, "y": 0.52},
    {"x": 0.88, "y": 0.11},
    {"x": 0.69, "y": 0.93},
    {"x": 0.27, "y": 0.9},
]
# Self-intersecting (a bow tie): the crossing region is outside under even-odd.
BOW_TIE = [{"x": 0.1, "y": 0.15}, {"x": 0.9, "y": 0.85}, {"x": 0.9, "y": 0.15}, {"x": 0.1, "y": 0.85}]
POLYGONS = {"triangle": TRIANGLE, "concave": CONCAVE, "bow_tie": BOW_TIE}


def _bounds(polygon: list[dict[str, float]]) -> dict[str, float]:
    xs, ys = [p["x"] for p in polygon], [p["y"] for p in polygon]
    return {"xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)}


@pytest.mark.parametrize("polygon", list(POLYGONS))
@pytest.mark.parametrize("resize", list(RESIZES))
def test_polygon_with_uniform_background_matches_reference(resize: str, polygon: str, landscape_png: bytes) -> None:
    # Given a polygon request with crop_uniform_background on
    spec = image_spec(resize_type=resize, target_size=RESIZES[resize])
    outline = POLYGONS[polygon]

    # When the library preprocesses it
    tensor, transform = preprocess(landscape_png, spec, polygon=outline, crop_uniform_background=True)

    # Then it matches the reference that whitens outside pixels with plain ray casting, then crops
    expected = reference(landscape_png, spec, polygon=outline, crop_uniform_background=True)
    assert tensor.shape == expected.shape
    difference = deviation(tensor, expected, spec)
    assert difference.max() <= EXACT_MAX, (resize, polygon)
    assert difference.mean() <= EXACT_MEAN
    # And boxes map back through the polygon's bounding box
    assert transform.crop[0] == int(_bounds(outline)["xmin"] * 97 + 0.5)


@pytest.mark.parametrize("polygon", list(POLYGONS))
def test_polygon_mask_whitens_exactly_the_pixels_outside(polygon: str) -> None:
    # Given a photo and its crop at its own size (no resampling), so every pixel can be compared
    picture = photo(83, 59, seed=11)
    pixels = np.asarray(picture.convert("RGB"))
    outline = POLYGONS[polygon]
    bounds = _bounds(outline)
    left, top = int(bounds["xmin"] * 83 + 0.5), int(bounds["ymin"] * 59 + 0.5)
    right, bottom = int(bounds["xmax"] * 83 + 0.5), int(bounds["ymax"] * 59 + 0.5)
    spec = image_spec(resize_type="SQUASH", target_size=f"{right - left}x{bottom - top}", resampling="EXACT")

    # When the polygon masks the crop
    prepared = prepare_image(encode(picture, "PNG"), spec, polygon=outline, crop_uniform_background=True)

    # Then the pixels whose centre ray casting puts outside are white, the others untouched
    points = [(p["x"] * 83, p["y"] * 59) for p in outline]
    expected = np.array(
        [[inside(points, column + 0.5, row + 0.5) for column in range(left, right)] for row in range(top, bottom)]
    )
    mask = polygon_mask([(p["x"], p["y"]) for p in outline], (83, 59), (left, top, right, bottom))
    assert np.array_equal(mask, expected)
    assert 0 < expected.sum() < expected.size
    crop = pixels[top:bottom, left:right]
    assert np.array_equal(prepared.pixels[expected], crop[expected])
    assert (prepared.pixels[~expected] == 255).all()


def test_polygon_without_uniform_background_crops_like_its_bounding_box(landscape_png: bytes) -> None:
    spec = image_spec(resize_type="SQUASH")

    with_polygon, transform = preprocess(landscape_png, spec, polygon=CONCAVE, crop_uniform_background=False)
    with_bbox, bbox_transform = preprocess(landscape_png, spec, bbox=_bounds(CONCAVE))

    assert np.array_equal(with_polygon, with_bbox)
    assert transform == bbox_transform


def test_uniform_background_without_polygon_changes_nothing(landscape_png: bytes) -> None:
    spec = image_spec(resize_type="CROP")
    bbox = {"xmin": 0.1, "ymin": 0.2, "xmax": 0.8, "ymax": 0.9}

    plain, _ = preprocess(landscape_png, spec, bbox=bbox)
    flagged, _ = preprocess(landscape_png, spec, bbox=bbox, crop_uniform_background=True)

    assert np.array_equal(plain, flagged)


def test_polygon_on_gray_input_whitens_to_255(landscape_png: bytes) -> None:
    spec = image_spec(resize_type="FILL", color_channels="L")

    tensor, _ = preprocess(landscape_png, spec, polygon=BOW_TIE, crop_uniform_background=True)

    expected = reference(landscape_png, spec, polygon=BOW_TIE, crop_uniform_background=True)
    assert deviation(tensor, expected, spec).max() <= 1.5


def test_polygon_mask_on_a_jpeg_uses_the_full_resolution_decode() -> None:
    # A large downscale would take the reduced JPEG decode; the mask needs every pixel.
    data = photo_jpeg(640, 480, seed=7)
    spec = image_spec(resize_type="SQUASH", target_size="37x23")
    # Bounds on multiples of 8 pixels (64, 48, 576, 384), so the reduced decode could apply.
    triangle = [{"x": 0.1, "y": 0.8}, {"x": 0.5, "y": 0.1}, {"x": 0.9, "y": 0.75}]

    prepared = prepare_image(data, spec, polygon=triangle, crop_uniform_background=True)
    unmasked = prepare_image(data, spec, polygon=triangle)

    assert prepared.decode_scale == 1
    assert unmasked.decode_scale > 1
    expected = reference(data, spec, polygon=triangle, crop_uniform_background=True)
    tensor, _ = preprocess(data, spec, polygon=triangle, crop_uniform_background=True)
    assert deviation(tensor, expected, spec).max() <= EXACT_MAX


@pytest.mark.parametrize(
    ("polygon", "bbox", "words"),
    [
        ([{"x": 0.1, "y": 0.1}, {"x": 0.5, "y": 0.5}], None, "3 to 1000 points"),
        ([{"x": 0.1, "y": 0.1}, {"x": 1.5, "y": 0.5}, {"x": 0.2, "y": 0.9}], None, "point 1 x is 1.5"),
        ([{"x": 0.1, "y": 0.1}, {"x": 0.5}, {"x": 0.2, "y": 0.9}], None, "point 1 must be {x, y}"),
        ([{"x": 0.1, "y": 0.3}, {"x": 0.5, "y": 0.3}, {"x": 0.9, "y": 0.3}], None, "no area"),
        ([{"x": 0.1, "y": "a"}, {"x": 0.5, "y": 0.3}, {"x": 0.9, "y": 0.7}], None, "must be a number"),
        (TRIANGLE, {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}, "not both"),
    ],
)
def test_bad_polygon_is_refused_with_a_sentence(
    polygon: list[dict[str, object]], bbox: dict[str, float] | None, words: str, landscape_png: bytes
) -> None:
    with pytest.raises(InvalidBoundingBox) as refused:
        prepare_image(landscape_png, image_spec(), polygon=polygon, bbox=bbox)

    assert words in refused.value.message
