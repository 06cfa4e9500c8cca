"""The worker decodes a recognition version's labelled predictions after the batch (DESIGN §7), under moto."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tensorgate.messages import RecognitionPlan
from tensorgate.models import TaskStatus
from tensorgate_preprocessing.spec import RecognitionPostProcessing

from tests.integration.test_worker import BLUE, GREEN, RED, Service, service  # noqa: F401 (fixture)
from tests.unit.worker.tiny_models import channel_mean_model, solid_image, ssd_style_detector, yolo_v8_style_detector

COLOURS = [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}, {"id": 3, "name": "blue"}]
UNIT_PIXELS = {
    "inputs": [
        {"tensor_name": "pixels", "image": {"dimension_order": "NHWC", "target_size": "4x4", "pixel_scaling": 1.0}}
    ]
}
YELLOW = (255, 255, 0)


def two_box_detector() -> bytes:
    """NHWC image → `boxes` N×2×4, two fixed boxes (normalised), and `scores` N×2×2: box 0 scores
    (red mean, 0), box 1 scores (0, green mean); so a red image finds label 0 in box 0 only."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, 4, 3])
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 2, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2, 2])
    constants = [
        helper.make_tensor("axes_hw", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("axis_1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis_2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("corners", TensorProto.FLOAT, [2, 4], [0.1, 0.2, 0.5, 0.6, 0.6, 0.5, 0.9, 0.9]),
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [2]),
        helper.make_tensor("diagonal", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes_hw"], ["mean"], keepdims=0),  # N×3
        helper.make_node("ReduceSum", ["mean", "axis_1"], ["total"], keepdims=1),  # N×1
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),  # N×1 zeros, for the batch dimension
        helper.make_node("Unsqueeze", ["nothing", "axis_2"], ["nothing3"]),  # N×1×1
        helper.make_node("Add", ["nothing3", "corners"], ["boxes"]),  # N×2×4
        helper.make_node("Slice", ["mean", "start", "end", "axis_1"], ["red_green"]),  # N×2
        helper.make_node("Unsqueeze", ["red_green", "axis_1"], ["red_green3"]),  # N×1×2
        helper.make_node("Mul", ["red_green3", "diagonal"], ["scores"]),  # N×2×2
    ]
    graph = helper.make_graph(nodes, "two_box_detector", [image], [boxes, scores], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def submit(through: Service, network: Any, colour: tuple[int, int, int], plan: RecognitionPlan, **fields: Any) -> int:
    """The helper's task and message, the message carrying the version's plan as the API's does."""
    sent: list[dict[str, Any]] = []
    queue = through.queue
    through.queue = Capture(sent)  # type: ignore[assignment]
    try:
        task_id = through.submit(network, solid_image(colour))
    finally:
        through.queue = queue
    (body,) = sent
    queue.send(body | {"recognition": plan.model_dump(mode="json")} | fields)
    return task_id


class Capture:
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.sent = sent

    def send(self, body: dict[str, Any], group: str | None = None) -> str:
        self.sent.append(body)
        return "captured"


def test_classification_version_answers_labels_at_or_above_their_threshold(service: Service) -> None:  # noqa: F811
    # Given a network whose output is the mean colour in [0, 1], and a version reading it as three labels
    network = service.network(channel_mean_model(), preprocessing=UNIT_PIXELS)
    plan = RecognitionPlan(
        spec_id=1,
        version_id=1,
        labels=[COLOURS],
        post_processings=[{"classification": {"output_tensor": "channel_mean", "thresholds": [0.5, 0.5, 0.5]}}],
    )
    red = submit(service, network, RED, plan)
    yellow = submit(service, network, YELLOW, plan, show_discarded=True)
    blue_capped = submit(service, network, BLUE, plan, show_discarded=True, max_predictions=2)
    plain_green = service.submit(network, solid_image(GREEN))

    # When the worker serves them
    service.serve([red, yellow, blue_capped, plain_green])

    # Then each answers its labelled predictions, best first
    tasks = dict(
        zip([red, yellow, blue_capped, plain_green], service.get([red, yellow, blue_capped, plain_green]), strict=True)
    )
    assert all(task.status is TaskStatus.SUCCESS for task in tasks.values()), [t.error for t in tasks.values()]
    (output,) = tasks[red].data["outputs"]
    assert [(p["label_id"], p["label_name"], p["threshold"]) for p in output["labels"]["predicted"]] == [
        (1, "red", 0.5)
    ]
    assert output["labels"]["predicted"][0]["score"] == np.float32(1.0)
    assert output["labels"]["discarded"] == []
    assert tasks[red].data["tensors"] == []  # no output_tensors asked for
    (output,) = tasks[yellow].data["outputs"]
    assert [p["label_name"] for p in output["labels"]["predicted"]] == ["red", "green"]
    assert [d["label_name"] for d in output["labels"]["discarded"]] == ["blue"]
    (output,) = tasks[blue_capped].data["outputs"]
    assert [p["label_name"] for p in output["labels"]["predicted"]] == ["blue"]
    assert [d["label_name"] for d in output["labels"]["discarded"]] == ["red"]  # max_predictions 2 in all
    # A plain network inference is unchanged: its tensors, no labelled outputs
    assert "outputs" not in tasks[plain_green].data
    assert [t["name"] for t in tasks[plain_green].data["tensors"]] == ["mean", "scaled"]


def test_recognition_post_processings_validated_once_per_sample_in_a_batch(
    service: Service,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given three inferences through a version with one post-processing
    network = service.network(channel_mean_model(), preprocessing=UNIT_PIXELS)
    plan = RecognitionPlan(
        spec_id=1,
        version_id=1,
        labels=[COLOURS],
        post_processings=[{"classification": {"output_tensor": "channel_mean", "thresholds": [0.5, 0.5, 0.5]}}],
    )
    tasks = [submit(service, network, colour, plan) for colour in (RED, GREEN, BLUE)]
    validated: list[Any] = []
    validate = RecognitionPostProcessing.model_validate

    def counting(value: Any) -> RecognitionPostProcessing:
        validated.append(value)
        return validate(value)

    monkeypatch.setattr(RecognitionPostProcessing, "model_validate", counting)
    # When the worker serves them
    service.serve(tasks)
    # Then each answered, and each sample's post-processing was validated once, not once per use in the batch
    assert [task.status for task in service.get(tasks)] == [TaskStatus.SUCCESS] * 3
    assert len(validated) == 3


def test_detection_version_answers_boxes_in_original_pixels(service: Service) -> None:  # noqa: F811
    # Given a detector with two fixed boxes whose scores are the red and green means
    network = service.network(
        two_box_detector(),
        preprocessing=UNIT_PIXELS,
        name_map={"pixels": "image", "boxes": "boxes", "scores": "scores"},
    )
    plan = RecognitionPlan(
        spec_id=1,
        version_id=2,
        labels=[[{"id": 5, "name": "apple"}, {"id": 6, "name": "leaf"}]],
        post_processings=[
            {
                "detection": {
                    "direct_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"},
                    "thresholds": [0.5, 0.5],
                    "nms_threshold": 0.45,
                }
            }
        ],
    )
    red = submit(service, network, RED, plan, output_tensors=["scores"])
    yellow = submit(service, network, YELLOW, plan)

    service.serve([red, yellow])

    red_task, yellow_task = service.get([red, yellow])
    assert red_task.status is TaskStatus.SUCCESS, red_task.error
    (output,) = red_task.data["outputs"]
    # solid_image is 32×24: the first box (0.1, 0.2, 0.5, 0.6) is (3.2, 4.8, 16, 14.4) in its pixels
    assert output["labels"]["predicted"] == [
        {
            "label_id": 5,
            "label_name": "apple",
            "score": 1.0,
            "threshold": 0.5,
            "roi": {"region_id": 1, "bbox": {"xmin": 3.2, "ymin": 4.8, "xmax": 16.0, "ymax": 14.4}},
        }
    ]
    assert [t["name"] for t in red_task.data["tensors"]] == ["scores"]
    (output,) = yellow_task.data["outputs"]
    assert [(p["label_name"], p["roi"]["region_id"]) for p in output["labels"]["predicted"]] == [
        ("apple", 1),
        ("leaf", 2),
    ]
    assert output["labels"]["predicted"][1]["roi"]["bbox"] == {"xmin": 19.2, "ymin": 12.0, "xmax": 28.8, "ymax": 21.6}


def detection_plan(version_id: int, decoder: dict[str, Any]) -> RecognitionPlan:
    return RecognitionPlan(
        spec_id=1,
        version_id=version_id,
        labels=[[{"id": 5, "name": "apple"}, {"id": 6, "name": "leaf"}]],
        post_processings=[{"detection": decoder | {"thresholds": [0.5, 0.5], "nms_threshold": 0.45}}],
    )


def predicted_boxes(task: Any) -> list[tuple[str, float, dict[str, float]]]:
    (output,) = task.data["outputs"]
    return [(p["label_name"], p["score"], p["roi"]["bbox"]) for p in output["labels"]["predicted"]]


def test_yolo_v8_style_onnx_served_with_yolo_output_answers_boxes_in_original_pixels(
    service: Service,  # noqa: F811
) -> None:
    # Given a YOLO-style export, NCHW in [0, 1] (pixel_scaling 1) on a 64×64 input
    preprocessing = {
        "inputs": [
            {"tensor_name": "images", "image": {"dimension_order": "NCHW", "target_size": "64x64", "pixel_scaling": 1}}
        ]
    }
    network = service.network(
        yolo_v8_style_detector(), preprocessing=preprocessing, name_map={"images": "images", "output0": "output0"}
    )
    plan = detection_plan(3, {"yolo_output": {"output_tensor": "output0", "layout": "v8"}})
    red = submit(service, network, RED, plan)
    yellow = submit(service, network, YELLOW, plan)

    service.serve([red, yellow])

    red_task, yellow_task = service.get([red, yellow])
    assert red_task.status is TaskStatus.SUCCESS, red_task.error
    # The 32×24 image squashed to 64×64: anchor 0's (8, 8, 24, 24) input pixels are (4, 3, 12, 9) of it,
    # anchor 1's (40, 24, 56, 56) are (20, 9, 28, 21).
    assert predicted_boxes(red_task) == [("apple", 1.0, {"xmin": 4.0, "ymin": 3.0, "xmax": 12.0, "ymax": 9.0})]
    assert predicted_boxes(yellow_task) == [
        ("apple", 1.0, {"xmin": 4.0, "ymin": 3.0, "xmax": 12.0, "ymax": 9.0}),
        ("leaf", 1.0, {"xmin": 20.0, "ymin": 9.0, "xmax": 28.0, "ymax": 21.0}),
    ]


def test_ssd_style_onnx_served_with_anchored_output_shares_its_anchors_across_the_batch(
    service: Service,  # noqa: F811
) -> None:
    # Given an SSD-style network whose anchors output has no batch dimension
    network = service.network(
        ssd_style_detector(),
        preprocessing=UNIT_PIXELS,
        name_map={"pixels": "image", "deltas": "deltas", "logits": "logits", "anchors": "anchors"},
    )
    decoder = {
        "anchored_output": {
            "deltas_tensor": "deltas",
            "scores_tensor": "logits",
            "anchors_tensor": "anchors",
            "anchor_format": "corners",
            "score_activation": "softmax",
            "background_class": True,
        }
    }
    plan = detection_plan(4, decoder)
    tasks = [submit(service, network, colour, plan) for colour in (RED, YELLOW, GREEN)]

    # When one batch serves the three images
    service.serve(tasks)

    red_task, yellow_task, green_task = service.get(tasks)
    assert all(t.status is TaskStatus.SUCCESS for t in (red_task, yellow_task, green_task)), red_task.error
    # softmax(0, 8, 0) gives the label e^8 / (e^8 + 2); the anchors' corners scaled to the 32×24 image
    score = round(float(np.exp(8) / (np.exp(8) + 2)), 6)
    apple = ("apple", score, {"xmin": 3.2, "ymin": 4.8, "xmax": 16.0, "ymax": 14.4})
    leaf = ("leaf", score, {"xmin": 19.2, "ymin": 12.0, "xmax": 28.8, "ymax": 21.6})
    assert predicted_boxes(red_task) == [apple]
    assert predicted_boxes(yellow_task) == [apple, leaf]
    assert predicted_boxes(green_task) == [leaf]
