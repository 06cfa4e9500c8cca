"""Fixtures of the converter tests: tiny models built once per session, in each upload form."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.unit.converter import models


@pytest.fixture(autouse=True)
def _collect_dropped_graphs():
    """Free each test's graphs before the next: TensorFlow and tf2onnx graphs hold reference cycles,
    and a zoo of them left to the collector's own pace grew the suite's process past 17 GB."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def classifier():
    return models.keras_classifier()


@pytest.fixture(scope="session")
def classifier_keras2():
    return models.keras_classifier(models.keras2())


@pytest.fixture(scope="session")
def classifier_saved_model(tmp_path_factory, classifier_keras2) -> Path:
    """The classifier as TensorFlow 2.15 users saved it: Keras 2, tf.saved_model.save."""
    return models.save_saved_model(classifier_keras2, tmp_path_factory.mktemp("classifier") / "saved_model")


@pytest.fixture
def upload(tmp_path) -> Path:
    """An empty upload directory, as the handler fills it from S3."""
    directory = tmp_path / "upload"
    directory.mkdir()
    return directory


@pytest.fixture
def output(tmp_path) -> Path:
    return tmp_path / "output"


@pytest.fixture
def onnx_upload(upload) -> Path:
    onnx.save(models.onnx_classifier(), str(upload / "model.onnx"))
    return upload


@pytest.fixture
def features() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((3, 4)).astype(np.float32)
