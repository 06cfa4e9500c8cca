"""The reduced-scale JPEG path stays within its documented bound of the reference (docs/preprocessing.md).

Bound, on the 0-255 scale, for photographs: mean absolute difference <= 1.0 and maximum <= 8.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, prepare_image
from tensorgate_preprocessing.spec import ImageSpec
from tensorgate_preprocessing.tensors import assemble

from .photos import encode, line_art, photo, photo_jpeg
from .reference import reference

MEAN_BOUND = 1.0
MAX_BOUND = 8.0

# size, seed, EXIF orientation, target, resize type, channels, bbox, the JPEG DCT reduction expected
CASES = [
    ((1280, 720), 0, 1, "150x150", "SQUASH", "RGB", None, 2),
    ((1280, 720), 1, 1, "100x60", "CROP", "RGB", None, 4),
    ((1280, 720), 2, 1, "224x224", "FILL", "BGR", None, 2),
    ((1280, 720), 3, 1, "300", "NETWORK", "RGB", None, 2),
    ((1024, 768), 0, 6, "112x112", "SQUASH", "RGB", None, 2),
    ((1024, 768), 1, 1, "96x64", "CROP", "L", None, 4),
    ((1024, 768), 2, 3, "64x64", "FILL", "RGB", None, 4),
    ((1024, 768), 3, 8, "100", "NETWORK", "RGB", None, 4),
    ((800, 600), 0, 1, "160x120", "SQUASH", "RGB", None, 2),
    ((800, 600), 1, 5, "90x90", "CROP", "RGB", None, 2),
    ((800, 600), 2, 1, "48x48", "SQUASH", "L", None, 4),
    ((768, 1024), 0, 1, "120x160", "FILL", "RGB", None, 2),
    ((768, 1024), 1, 2, "64x96", "CROP", "RGB", None, 4),
    ((768, 1024), 2, 7, "40x40", "SQUASH", "RGB", None, 8),
    ((640, 480), 0, 1, "128x96", "SQUASH", "RGB", None, 2),
    ((640, 480), 1, 4, "64", "NETWORK", "L", None, 4),
    ((1600, 1200), 0, 1, "224x224", "CROP", "RGB", None, 2),
    ((1600, 1200), 1, 1, "99x77", "FILL", "RGB", None, 4),
    ((1600, 1200), 3, 6, "64x48", "CROP", "RGB", None, 8),
    ((1600, 1200), 2, 1, "64x64", "SQUASH", "RGB", {"xmin": 0.25, "ymin": 0.5, "xmax": 0.75, "ymax": 1.0}, 4),
    ((1024, 768), 0, 1, "64x64", "SQUASH", "RGB", {"xmin": 0.125, "ymin": 0.0, "xmax": 0.625, "ymax": 0.5}, 2),
]


@pytest.mark.parametrize(("size", "seed", "orientation", "target", "resize", "color", "bbox", "scale"), CASES)
def test_fast_path_stays_within_documented_bound(
    size: tuple[int, int],
    seed: int,
    orientation: int,
    target: str,
    resize: str,
    color: str,
    bbox: dict[str, float] | None,
    scale: int,
) -> None:
    # Given a photograph, stored under an EXIF orientation, downscaled enough for a reduced decode
    data = photo_jpeg(*size, seed=seed, orientation=orientation)
    spec = ImageSpec(target_size=target, resize_type=resize, color_channels=color, dimension_order="NHWC")

    # When the default path prepares it
    prepared = prepare_image(data, spec, bbox=bbox)
    tensor = assemble([prepared], spec)[0].array

    # Then it did decode at reduced scale, and stays within the bound of the full-decode reference
    assert prepared.decode_scale == scale
    difference = np.abs(tensor.astype(np.float64) - reference(data, spec, bbox=bbox))
    assert difference.mean() <= MEAN_BOUND
    assert difference.max() <= MAX_BOUND


def test_fast_path_is_skipped_when_a_decoded_pixel_would_straddle_an_edge() -> None:
    # 1001 and 333 are not multiples of 2: a reduced decode's last pixel would be partly padding
    odd = photo_jpeg(1001, 333, seed=1)
    even = photo_jpeg(1000, 336, seed=1)
    spec = ImageSpec(target_size="64x32", resize_type="SQUASH")

    assert prepare_image(odd, spec).decode_scale == 1
    assert prepare_image(even, spec).decode_scale == 4
    # a bbox whose edges fall inside a reduced pixel drops to the scale that divides them
    bbox = {"xmin": 0.001, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}  # left edge at pixel 1
    assert prepare_image(even, spec, bbox=bbox).decode_scale == 1


def test_fast_path_needs_the_documented_oversampling() -> None:
    # 1280×720 to 224×224: 720 / 224 = 3.2 decoded rows per output row at full scale; halving would leave
    # 1.6 < JPEG_OVERSAMPLING, so the full decode is used
    data = photo_jpeg(1280, 720, seed=0)
    spec = ImageSpec(target_size="224x224")

    assert JPEG_OVERSAMPLING > 720 / 224 / 2
    assert prepare_image(data, spec).decode_scale == 1
    assert prepare_image(data, spec, jpeg_oversampling=1.5).decode_scale == 2
    assert prepare_image(data, spec, jpeg_oversampling=None).decode_scale == 1


@pytest.mark.parametrize(
    ("variant", "options"),
    [
        ("progressive", {"progressive": True}),
        ("4:4:4", {"subsampling": 0}),
        ("grayscale", {}),
        ("CMYK", {}),
        ("MPO", {}),
    ],
)
@pytest.mark.parametrize("color", ["RGB", "L"])
def test_fast_path_jpeg_variants_stay_within_bound(variant: str, options: dict[str, object], color: str) -> None:
    picture = photo(1024, 768, seed=5)
    if variant == "grayscale":
        picture = picture.convert("L")
    elif variant == "CMYK":
        picture = picture.convert("CMYK")
    buffer = io.BytesIO()
    if variant == "MPO":
        picture.save(buffer, "MPO", quality=90, save_all=True, append_images=[picture.rotate(90)])
    else:
        picture.save(buffer, "JPEG", quality=90, **options)
    data = buffer.getvalue()
    spec = ImageSpec(target_size="112x112", color_channels=color)

    prepared = prepare_image(data, spec)

    assert prepared.decode_scale == 2
    difference = np.abs(assemble([prepared], spec)[0].array.astype(np.float64) - reference(data, spec))
    assert difference.mean() <= MEAN_BOUND
    assert difference.max() <= MAX_BOUND


def test_exact_resampling_takes_the_reference_path_for_line_art() -> None:
    # Given line art (hard 1-pixel edges on white), outside the photographic bound of the fast path,
    # large enough for a reduced decode
    data = encode(line_art(1280, 960), "JPEG", quality=90)
    fast = ImageSpec(target_size="128x96")
    exact = ImageSpec(target_size="128x96", resampling="EXACT")

    # When a network declares resampling EXACT
    prepared = prepare_image(data, exact)

    # Then the JPEG is decoded at full size, exactly like the reference path, whatever the caller's default
    assert prepare_image(data, fast).decode_scale == 4
    assert prepared.decode_scale == 1
    assert prepare_image(data, exact, jpeg_oversampling=1.0).decode_scale == 1
    assert np.array_equal(prepared.pixels, prepare_image(data, fast, jpeg_oversampling=None).pixels)
    difference = np.abs(assemble([prepared], exact)[0].array.astype(np.float64) - reference(data, exact))
    assert difference.max() <= 1.0


def test_resampling_accepts_fast_or_exact_only() -> None:
    assert ImageSpec().resampling is None  # FAST; left out of stored declarations, as v0.7 clients sent them
    assert ImageSpec(resampling="FAST").resampling == "FAST"
    assert ImageSpec(resampling="EXACT").resampling == "EXACT"
    with pytest.raises(ValueError, match="FAST"):
        ImageSpec(resampling="exactly")


def _random_geometries(count: int, seed: int) -> list[tuple[tuple[int, int], int, int, str, str, str]]:
    """Geometries drawn as bench/preprocess_deviation.py draws them (unseen by CASES), each reducing enough
    for a DCT-scaled decode: size, photo seed, EXIF orientation, target, resize type, channels."""
    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (800, 600), (1024, 768), (768, 1024), (1280, 720), (1000, 336)]
    drawn = []
    for _ in range(count):
        width, height = sizes[rng.integers(len(sizes))]
        reduction = [2, 4, 8][rng.integers(3)] * rng.uniform(JPEG_OVERSAMPLING + 0.05, JPEG_OVERSAMPLING + 1.2)
        resize = ["SQUASH", "CROP", "FILL", "NETWORK"][rng.integers(4)]
        if resize == "NETWORK":
            target = str(max(8, int(max(width, height) / reduction)))
        else:
            target = f"{max(8, int(width / reduction / rng.uniform(1, 1.6)))}x"
            target += str(max(8, int(height / reduction / rng.uniform(1, 1.6))))
        orientation, color = int(rng.integers(1, 9)), ["RGB", "BGR", "L"][rng.integers(3)]
        drawn.append(((width, height), int(rng.integers(20, 40)), orientation, target, resize, color))
    return drawn


@pytest.mark.parametrize(("size", "seed", "orientation", "target", "resize", "color"), _random_geometries(12, seed=16))
def test_fast_path_random_geometries_and_orientations_stay_within_bound(
    size: tuple[int, int], seed: int, orientation: int, target: str, resize: str, color: str
) -> None:
    # Given a photograph under a random EXIF orientation, and a random geometry that reduces it enough
    data = photo_jpeg(*size, seed=seed, orientation=orientation)
    spec = ImageSpec(target_size=target, resize_type=resize, color_channels=color, dimension_order="NHWC")

    # When the default path prepares it (whichever Pillow build is installed: Pillow or Pillow-SIMD)
    prepared = prepare_image(data, spec)

    # Then it took the reduced decode and stays within the bound of the float64 reference
    assert prepared.decode_scale > 1
    difference = np.abs(assemble([prepared], spec)[0].array.astype(np.float64) - reference(data, spec))
    assert difference.mean() <= MEAN_BOUND
    assert difference.max() <= MAX_BOUND
