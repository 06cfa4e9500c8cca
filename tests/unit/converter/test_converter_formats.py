"""Format detection from the uploaded files and `framework`, without TensorFlow."""

from __future__ import annotations

import json

import pytest

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.formats import ModelFormat, locate_model
from tests.unit.converter import models


def _files(directory, *names, content=b"x"):
    for name in names:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_locate_model_flat_saved_model_files_are_laid_out_for_tensorflow(upload, tmp_path):
    _files(upload, "saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy")

    located = locate_model(upload, tmp_path / "work", "tensorflow-1.x")

    assert located.format is ModelFormat.SAVED_MODEL
    assert (located.path / "saved_model.pb").exists()
    assert sorted(item.name for item in (located.path / "variables").iterdir()) == [
        "variables.data-00000-of-00001",
        "variables.index",
    ]
    assert set(located.model_files) == {"saved_model.pb", "variables.index", "variables.data-00000-of-00001"}
    assert list(located.mean_files) == ["mean.npy"]


def test_locate_model_saved_model_with_variables_folder_is_used_in_place(upload, tmp_path):
    _files(upload, "saved_model.pbtxt", "variables/variables.index", "variables/variables.data-00000-of-00001")

    located = locate_model(upload, tmp_path / "work", None)

    assert located.format is ModelFormat.SAVED_MODEL
    assert located.path == upload


def test_locate_model_missing_variables_index_is_named(upload, tmp_path):
    _files(upload, "saved_model.pb", "variables.data-00000-of-00001")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", None)

    assert caught.value.reason is Reason.MISSING_FILE
    assert "variables.index is missing" in caught.value.message


def test_locate_model_missing_variable_shard_is_named(upload, tmp_path):
    _files(upload, "saved_model.pb", "variables.index", "variables.data-00000-of-00002")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", None)

    assert caught.value.details["missing"] == ["variables.data-00001-of-00002"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.keras", ModelFormat.KERAS),
        ("model.h5", ModelFormat.KERAS_H5),
        ("frozen.pb", ModelFormat.FROZEN_GRAPH),
        ("frozen.graph", ModelFormat.FROZEN_GRAPH),
        ("model.tflite", ModelFormat.TFLITE),
        ("model.onnx", ModelFormat.ONNX),
    ],
)
def test_locate_model_single_file_formats_are_detected(upload, tmp_path, name, expected):
    _files(upload, name, "test_input.npz", "test_expected_output.npz")

    located = locate_model(upload, tmp_path / "work", None)

    assert located.format is expected
    assert located.test_input == upload / "test_input.npz"
    assert located.test_expected_output == upload / "test_expected_output.npz"


def test_locate_model_zipped_saved_model_is_found_inside_its_folder(upload, tmp_path):
    exported = tmp_path / "export"
    _files(exported, "saved_model.pb", "keras_metadata.pb", "fingerprint.pb", "variables/variables.index")
    _files(exported, "variables/variables.data-00000-of-00001")
    models.zip_directory(exported, upload / "network.zip", prefix="my_model/")

    located = locate_model(upload, tmp_path / "work", "tensorflow-2.x")

    assert located.format is ModelFormat.SAVED_MODEL
    assert located.path.name == "my_model"
    assert located.model_files[0] == "network.zip:my_model/saved_model.pb"


def test_locate_model_tar_gz_keras_file_is_found(upload, tmp_path):
    packed = tmp_path / "packed"
    _files(packed, "model.keras")
    models.tar_directory(packed, upload / "network.tar.gz")

    assert locate_model(upload, tmp_path / "work", None).format is ModelFormat.KERAS


def test_locate_model_two_models_without_framework_is_ambiguous(upload, tmp_path):
    _files(upload, "model.onnx", "model.tflite")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", None)

    assert caught.value.reason is Reason.AMBIGUOUS_MODEL
    assert "model.onnx" in caught.value.message and "model.tflite" in caught.value.message


def test_locate_model_framework_chooses_between_models(upload, tmp_path):
    _files(upload, "model.onnx", "model.tflite")

    assert locate_model(upload, tmp_path / "work", "onnx").format is ModelFormat.ONNX


def test_locate_model_no_model_file_lists_what_was_uploaded(upload, tmp_path):
    _files(upload, "mean.npy", "notes.txt")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", None)

    assert caught.value.reason is Reason.NO_MODEL
    assert "'mean.npy'" in caught.value.message and "saved_model.pb" in caught.value.message


def test_locate_model_framework_that_does_not_match_the_files_says_so(upload, tmp_path):
    _files(upload, "model.onnx")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", "tflite")

    assert caught.value.reason is Reason.NO_MODEL
    assert "framework 'tflite' was declared" in caught.value.message


def test_locate_model_unsupported_framework_is_refused(upload, tmp_path):
    _files(upload, "model.params", "model-symbol.json")

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", "mxnet")

    assert caught.value.reason is Reason.UNSUPPORTED_FORMAT


def test_locate_model_node_name_mapping_file_is_read(upload, tmp_path):
    _files(upload, "frozen.pb")
    (upload / "node_name_mapping.json").write_text(json.dumps(models.ADDITION_MAPPING))

    assert locate_model(upload, tmp_path / "work", None).node_name_mapping == models.ADDITION_MAPPING


def test_locate_model_node_name_mapping_not_an_object_is_refused(upload, tmp_path):
    _files(upload, "frozen.pb")
    (upload / "node_name_mapping.json").write_text('["x"]')

    with pytest.raises(ConversionFailed) as caught:
        locate_model(upload, tmp_path / "work", None)

    assert caught.value.reason is Reason.INVALID_DECLARATION
