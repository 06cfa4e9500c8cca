"""Batches: straight into one preallocated array, grouped by shape, per-sample errors kept apart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tensorgate_preprocessing.batching import ImageInput, WrongInputCount, build_batches
from tensorgate_preprocessing.errors import InvalidImage
from tensorgate_preprocessing.images import PixelArray, prepare_image
from tensorgate_preprocessing.spec import PreprocessingSpec
from tensorgate_preprocessing.tensors import assemble, load_mean, preprocess

from .conftest import image_spec, npy
from .photos import encode, photo


def _pictures(count: int, sizes: list[tuple[int, int]] | None = None) -> list[bytes]:
    sizes = sizes or [(60 + 7 * index, 40 + 3 * index) for index in range(count)]
    return [encode(photo(width, height, seed=index), "PNG") for index, (width, height) in enumerate(sizes)]


def test_assemble_equals_one_at_a_time_and_never_concatenates(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given five images and an NCHW float16 spec with a mean
    spec = image_spec(dimension_order="NCHW", data_type="FLOAT16", mean_file="m.npy", pixel_scaling=2.0)
    mean = load_mean(npy(np.array([0.5, 0.4, 0.3]).reshape(3, 1, 1)), spec)
    sources = _pictures(5)
    singles = [preprocess(source, spec, mean=mean)[0] for source in sources]
    prepared = [prepare_image(source, spec) for source in sources]

    # When they are assembled, with concatenation and stacking made impossible
    for name in ("concatenate", "stack", "vstack"):
        monkeypatch.setattr(np, name, lambda *args, **kwargs: pytest.fail("batch assembly must not copy arrays"))
    (batch,) = assemble(prepared, spec, mean)

    # Then one array holds them all, equal to preprocessing them one by one
    assert batch.array.shape == (5, 3, 23, 37) and batch.array.dtype == np.float16
    assert batch.positions == [0, 1, 2, 3, 4]
    for row, single in enumerate(singles):
        np.testing.assert_array_equal(batch.array[row], single[0])


def test_assemble_groups_network_inputs_by_shape() -> None:
    # Given NETWORK-resized images of three aspect ratios, two of them alike
    spec = image_spec(resize_type="NETWORK", target_size="32")
    sources = _pictures(4, [(64, 32), (30, 60), (128, 64), (50, 50)])

    batches = assemble([prepare_image(source, spec) for source in sources], spec)

    shapes = {tuple(batch.positions): batch.array.shape for batch in batches}
    assert shapes == {(0, 2): (2, 16, 32, 3), (1,): (1, 32, 16, 3), (3,): (1, 32, 32, 3)}
    assert all(len(batch.transforms) == len(batch.positions) for batch in batches)


def test_build_batches_keeps_bad_samples_apart() -> None:
    # Given a two-input network and four samples: good, bad image, wrong input count, good
    preprocessing = PreprocessingSpec.model_validate(
        {
            "inputs": [
                {"tensor_name": "image", "image": {"target_size": "16x16", "dimension_order": "NCHW"}},
                {"tensor_name": "crop", "image": {"target_size": "8x8", "color_channels": "L", "data_type": "UINT8"}},
            ]
        }
    )
    good = _pictures(2)
    samples = [
        [ImageInput(good[0]), ImageInput(good[1], {"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": 0.5})],
        [ImageInput(b"garbage"), ImageInput(good[1])],
        [ImageInput(good[0])],
        [ImageInput(good[1]), ImageInput(good[0])],
    ]

    plan = build_batches(samples, preprocessing)

    # Then the good samples share one batch and each failure is reported for its own sample
    assert set(plan.errors) == {1, 2}
    assert isinstance(plan.errors[1], InvalidImage) and isinstance(plan.errors[2], WrongInputCount)
    (batch,) = plan.batches
    assert batch.positions == [0, 3]
    assert batch.feeds["image"].shape == (2, 3, 16, 16) and batch.feeds["crop"].shape == (2, 8, 8, 1)
    assert batch.feeds["crop"].dtype == np.uint8
    assert batch.transforms[0][1].crop == (0, 0, 34, 22)  # 67x43 halves, rounded half up


def test_build_batches_with_threads_and_chunks_matches_serial() -> None:
    preprocessing = PreprocessingSpec.model_validate(
        {"inputs": [{"tensor_name": "x", "image": {"target_size": "20x10", "resize_type": "FILL"}}]}
    )
    samples = [[ImageInput(source)] for source in _pictures(5)]

    serial = build_batches(samples, preprocessing)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = build_batches(samples, preprocessing, executor=pool, max_batch_size=2)

    assert [batch.positions for batch in threaded.batches] == [[0, 1], [2, 3], [4]]
    np.testing.assert_array_equal(
        np.concatenate([batch.feeds["x"] for batch in threaded.batches]), serial.batches[0].feeds["x"]
    )


def test_build_batches_uses_resolved_targets_and_means() -> None:
    preprocessing = PreprocessingSpec.model_validate(
        {"inputs": [{"tensor_name": "x", "image": {"dimension_order": "NHWC", "mean_file": "m.npy"}}]}
    )
    spec = preprocessing.inputs[0].image
    from tensorgate_preprocessing.geometry import resolve_target_size

    target = resolve_target_size(spec, [None, 12, 10, 3])
    mean = load_mean(npy(np.full((1, 1, 3), 100.0)), spec, target=target)
    pixels = np.full((30, 30, 3), 255, np.uint8)

    plan = build_batches([[ImageInput(PixelArray(pixels))]], preprocessing, means={"x": mean}, targets={"x": target})

    feed = plan.batches[0].feeds["x"]
    assert feed.shape == (1, 12, 10, 3)
    np.testing.assert_allclose(feed, 155.0)
