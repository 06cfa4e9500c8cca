"""Postprocessing: the v0.7 tensors, standard_output detections in original pixels, top-k labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorgate_preprocessing.errors import InvalidModelOutput, UnknownOutputTensor
from tensorgate_preprocessing.geometry import ImageTransform
from tensorgate_preprocessing.postprocess import (
    InvalidDetectionSettings,
    classify,
    detect,
    detection_settings,
    postprocess,
    requested_tensors,
    split_batch,
    tensor_results,
)
from tensorgate_preprocessing.spec import DetectionSettings, PostprocessingSpec

# A 1000×500 photo squashed to a 100×100 input: x scales by 10, y by 5
SQUASHED = ImageTransform((1000, 500), (0, 0, 1000, 500), (100, 100), (0, 0), (100, 100))
DEFAULTS = DetectionSettings()


def _post(**fields: object) -> PostprocessingSpec:
    return PostprocessingSpec.model_validate(fields)


def test_tensor_results_flatten_row_major_with_batch_of_one() -> None:
    outputs = split_batch({"logits": np.arange(12, dtype=np.float32).reshape(2, 2, 3)}, 2)

    (result,) = tensor_results(outputs[1], ["logits"])

    assert result == {"name": "logits", "shape": [1, 2, 3], "data": [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]}
    json.dumps(result)


def test_tensor_results_non_finite_values_become_null() -> None:
    (result,) = tensor_results({"x": np.array([[1.0, np.nan, np.inf]])}, ["x"])
    assert result["data"] == [1.0, None, None]
    assert "NaN" not in json.dumps(result)


def test_split_batch_refuses_outputs_without_the_batch_dimension() -> None:
    with pytest.raises(InvalidModelOutput, match="batch size 3"):
        split_batch({"x": np.zeros((2, 4))}, 3)


def test_requested_tensors_default_and_explicit() -> None:
    posts = [
        _post(tensors_output={"tensors": ["probs", "embedding"]}),
        _post(standard_output={"boxes_tensor": "boxes", "scores_tensor": "scores"}),
    ]
    assert requested_tensors(posts, None) == ["probs", "embedding"]
    assert requested_tensors(posts, ["boxes", "probs", "boxes"]) == ["boxes", "probs"]
    with pytest.raises(UnknownOutputTensor, match="secret"):
        requested_tensors(posts, ["secret"])


def test_detect_threshold_per_class_nms_and_max_objects() -> None:
    # Given two near-identical boxes (IoU 0.9), one far box, and two classes
    boxes = np.array(
        [[0.10, 0.10, 0.50, 0.50], [0.11, 0.10, 0.51, 0.50], [0.60, 0.60, 0.90, 0.90], [0.0, 0.0, 0.2, 0.2]]
    )
    scores = np.array([[0.9, 0.8], [0.85, 0.1], [0.3, 0.7], [0.49, 0.0]])

    found = detect(boxes, scores, SQUASHED, DEFAULTS, ["cat", "dog"])

    # Then per class the overlapping weaker cat is suppressed, the dog on box 0 survives (other class),
    # the 0.49 and 0.3 scores are below the 0.5 threshold, and boxes are in original pixels
    assert found == [
        {"box": [100.0, 50.0, 500.0, 250.0], "label": "cat", "score": 0.9},
        {"box": [100.0, 50.0, 500.0, 250.0], "label": "dog", "score": 0.8},
        {"box": [600.0, 300.0, 900.0, 450.0], "label": "dog", "score": 0.7},
    ]
    assert len(detect(boxes, scores, SQUASHED, DetectionSettings(max_objects=2), ["cat", "dog"])) == 2
    lenient = DetectionSettings(bounding_box_threshold=0.2, iou_threshold=0.95)
    assert len(detect(boxes, scores, SQUASHED, lenient, ["cat", "dog"])) == 5


def test_detect_maps_boxes_through_crop_and_clips_to_what_the_network_saw() -> None:
    # Given a bbox crop [200, 100, 600, 300] (400×200) FILLed into 100×100: resized 100×50, padded below
    transform = ImageTransform((1000, 500), (200, 100, 600, 300), (100, 50), (0, 0), (100, 100))
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.25, 1.0, 1.0], [0.0, 0.6, 1.0, 1.0]])
    scores = np.array([0.9, 0.8, 0.95])

    found = detect(boxes, scores, transform, DEFAULTS)

    # Then the first box is the top-left quarter of the crop, the second is clipped at the padding,
    # and the third lies entirely in the padding and is dropped
    assert [item["box"] for item in found] == [[200.0, 100.0, 400.0, 300.0], [400.0, 200.0, 600.0, 300.0]]
    assert [item["label"] for item in found] == ["0", "0"]


def test_detect_refuses_mismatched_outputs() -> None:
    with pytest.raises(InvalidModelOutput, match="N x 4"):
        detect(np.zeros((3, 5)), np.zeros((3, 2)), SQUASHED, DEFAULTS)
    with pytest.raises(InvalidModelOutput, match="boxes' N = 3"):
        detect(np.zeros((3, 4)), np.zeros((4, 2)), SQUASHED, DEFAULTS)
    with pytest.raises(InvalidModelOutput, match="2 classes but the postprocessing lists 3 labels"):
        detect(np.zeros((1, 3, 4)), np.zeros((1, 3, 2)), SQUASHED, DEFAULTS, ["a", "b", "c"])


def test_detection_settings_request_overrides_are_validated() -> None:
    network = DetectionSettings(bounding_box_threshold=0.3)
    assert detection_settings(network, {"max_objects": 5}).model_dump() == {
        "bounding_box_threshold": 0.3,
        "iou_threshold": 0.5,
        "max_objects": 5,
    }
    with pytest.raises(InvalidDetectionSettings, match="iou_threshold"):
        detection_settings(network, {"iou_threshold": 2})
    with pytest.raises(InvalidDetectionSettings, match="Unknown"):
        detection_settings(network, {"nms": 0.4})


def test_classify_top_k_with_labels() -> None:
    scores = np.array([[0.1, 0.6, 0.05, 0.25]])
    assert classify(scores, ["a", "b", "c", "d"], 2) == [{"label": "b", "score": 0.6}, {"label": "d", "score": 0.25}]
    with pytest.raises(InvalidModelOutput, match="4 classes but the postprocessing lists 3"):
        classify(scores, ["a", "b", "c"], 2)


def test_postprocess_builds_the_v07_result() -> None:
    # Given a network with a labelled classifier and a detector
    posts = [
        _post(tensors_output={"tensors": ["probs"], "labels": ["cat", "dog"], "top_k": 1}),
        _post(standard_output={"boxes_tensor": "boxes", "scores_tensor": "scores", "labels": ["car"]}),
    ]
    outputs = {
        "probs": np.array([[0.3, 0.7]], np.float32),
        "boxes": np.array([[[0.0, 0.0, 0.5, 0.5]]], np.float32),
        "scores": np.array([[[0.45]]], np.float32),
    }

    default = postprocess(outputs, posts, SQUASHED)
    lowered = postprocess(
        outputs, posts, SQUASHED, output_tensors=["boxes"], detection_overrides={"bounding_box_threshold": 0.4}
    )

    assert default == {
        "tensors": [{"name": "probs", "shape": [1, 2], "data": pytest.approx([0.3, 0.7])}],
        "outputs": [{"label": "dog", "score": pytest.approx(0.7)}],
    }
    assert lowered["tensors"] == [{"name": "boxes", "shape": [1, 1, 4], "data": [0.0, 0.0, 0.5, 0.5]}]
    assert lowered["outputs"][1] == {"box": [0.0, 0.0, 500.0, 250.0], "label": "car", "score": pytest.approx(0.45)}


def test_postprocess_plain_tensors_have_no_outputs_key() -> None:
    result = postprocess({"x": np.ones((1, 2))}, [_post(tensors_output={"tensors": ["x"]})], None)
    assert result == {"tensors": [{"name": "x", "shape": [1, 2], "data": [1.0, 1.0]}]}
    with pytest.raises(InvalidModelOutput, match="no output tensor named 'y'"):
        postprocess({"x": np.ones((1, 2))}, [_post(tensors_output={"tensors": ["y"]})], None)
