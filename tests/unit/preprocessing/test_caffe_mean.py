"""Caffe's .binaryproto mean files, as compute_image_mean writes them, read by load_mean."""

from __future__ import annotations

import numpy as np
import pytest
from tensorgate_preprocessing.errors import InvalidMeanFile
from tensorgate_preprocessing.tensors import load_mean

from tests.unit.converter.caffe_zoo import blob_proto, mean_binaryproto

from .conftest import image_spec

MEAN = np.arange(3 * 256 * 256, dtype=np.float32).reshape(3, 256, 256) / 1000


def test_load_mean_caffe_mean_larger_than_the_target_is_centre_cropped_as_caffe_does() -> None:
    spec = image_spec(dimension_order="NCHW", target_size="224x224", mean_file="mean_file_1.binaryproto")

    mean = load_mean(mean_binaryproto(MEAN), spec)

    np.testing.assert_array_equal(mean, MEAN[:, 16:240, 16:240])


def test_load_mean_caffe_mean_follows_the_inputs_dimension_order() -> None:
    spec = image_spec(dimension_order="NHWC", target_size="224x200", mean_file="mean.binaryproto")

    mean = load_mean(mean_binaryproto(MEAN), spec)

    np.testing.assert_array_equal(mean, MEAN[:, 28:228, 16:240].transpose(1, 2, 0))


def test_load_mean_caffe_per_channel_mean_with_a_shape_field_broadcasts() -> None:
    spec = image_spec(dimension_order="NCHW", target_size="32x32", mean_file="mean.binaryproto")
    values = np.array([104.0, 117.0, 123.0], np.float32).reshape(1, 3, 1, 1)

    assert load_mean(blob_proto(values), spec).ravel().tolist() == [104.0, 117.0, 123.0]


def test_load_mean_nvcaffe_half_precision_mean_is_read() -> None:
    spec = image_spec(dimension_order="NCHW", target_size="224x224", mean_file="mean.binaryproto")

    mean = load_mean(blob_proto(MEAN[None], float16=True), spec)

    np.testing.assert_allclose(mean, MEAN[:, 16:240, 16:240], rtol=1e-3)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"\x93NUMPY not a blob", "binaryproto"), (blob_proto(np.ones((1, 3, 4, 4)))[:-7], "binaryproto")],
    ids=["npy_bytes_named_binaryproto", "truncated"],
)
def test_load_mean_caffe_unreadable_mean_is_refused_with_a_sentence(data: bytes, fragment: str) -> None:
    spec = image_spec(dimension_order="NCHW", target_size="4x4", mean_file="mean.binaryproto")

    with pytest.raises(InvalidMeanFile) as caught:
        load_mean(data, spec)

    assert fragment in caught.value.message and caught.value.message.endswith(".")
