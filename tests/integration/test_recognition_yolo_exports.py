"""YOLO heads exported by torch.onnx.export as the YOLO tool chains export them, uploaded through the API as
`.onnx` files, converted, bound to a detection spec with `yolo_output`, and served by the worker, under moto.

The detectors (tests/unit/worker/yolo_exports.py) score a cell by its colour and place boxes by their
cell alone, so each expected box is worked out below from the head's geometry and the preprocessing's
resize: the boxes come back in the pictures' pixels.
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

from PIL import Image, ImageDraw
from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.integration.test_worker import Service, service  # noqa: F401 (fixture)

HEADERS = {"X-API-KEY": DEV_KEY}
FRUIT = [{"id": 5, "name": "apple"}, {"id": 6, "name": "leaf"}]  # label 0 on red cells, label 1 on green ones
RED, GREEN, YELLOW = (255, 0, 0), (0, 255, 0), (255, 255, 0)


def picture(blocks: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]]) -> bytes:
    """A black 128×96 PNG with solid blocks `((x1, y1, x2, y2), colour)`, edges excluded."""
    image = Image.new("RGB", (128, 96))
    draw = ImageDraw.Draw(image)
    for (x1, y1, x2, y2), colour in blocks:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def served_export(api: Client, convert: Any, model: bytes, resize_type: str) -> int:
    """The export uploaded as a user would (multipart `model.onnx`), converted: the network's id."""
    image = {"dimension_order": "NCHW", "target_size": "64x64", "pixel_scaling": 1, "resize_type": resize_type}
    fields = {"preprocessing": {"inputs": [{"tensor_name": "images", "image": image}]}}
    data: dict[str, Any] = {"name": "yolo export", "framework": "onnx"}
    data |= {name: json.dumps(value) for name, value in fields.items()}
    data["model.onnx"] = (io.BytesIO(model), "model.onnx")
    response = api.post("/v0.7/networks", headers=HEADERS, data=data)
    assert response.status_code == 201, response.text
    convert()
    network = api.get(f"/v0.7/networks/{response.json['id']}", headers=HEADERS).json
    assert network["status"] == "ready", network
    return int(network["id"])


def detection_spec(
    api: Client, network_id: int, detection: dict[str, Any], labels: list[dict[str, Any]] = FRUIT
) -> int:
    spec = api.post(
        "/v0.7/recognition/specs",
        headers=HEADERS,
        json={"name": "fruit", "outputs": [{"labels": {"roi": "BBOX", "exclusive": False, "labels": labels}}]},
    )
    assert spec.status_code == 201, spec.text
    version = api.post(
        "/v0.7/recognition/versions",
        headers=HEADERS,
        json={"spec_id": spec.json["id"], "network_id": network_id, "post_processings": [{"detection": detection}]},
    )
    assert version.status_code == 201, version.text
    return int(spec.json["id"])


def recognise(api: Client, through: Service, spec_id: int, pictures: list[bytes]) -> list[list[Any]]:
    """Each picture through the spec, served in one run of the worker: its predicted (label, score, bbox)."""
    answers = []
    for task in served_tasks(api, through, spec_id, pictures):
        assert task["status"] == "success", task
        (output,) = task["data"]["outputs"]
        answers.append([(p["label_name"], p["score"], p["roi"]["bbox"]) for p in output["labels"]["predicted"]])
    return answers


def served_tasks(api: Client, through: Service, spec_id: int, pictures: list[bytes]) -> list[dict[str, Any]]:
    """Each picture's task once one run of the worker has served them all."""
    task_ids = []
    for content in pictures:
        source = base64.b64encode(content).decode()
        response = api.post(
            f"/v0.7/recognition/specs/{spec_id}/inference",
            headers=HEADERS,
            json={"inputs": [{"image": {"source": source}}]},
        )
        assert response.status_code == 200, response.text
        task_ids.append(response.json["task_id"])
    through.serve(task_ids)
    return [api.get(f"/v0.7/tasks/{task_id}", headers=HEADERS).json for task_id in task_ids]


def logistic(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def bbox(xmin: float, ymin: float, xmax: float, ymax: float) -> dict[str, float]:
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def test_yolov5_style_export_with_objectness_answers_boxes_in_the_squashed_pictures_pixels(
    api: Client,
    convert: Any,
    service: Service,  # noqa: F811
) -> None:
    from tests.unit.worker.yolo_exports import YoloV5StyleDetector, export_onnx  # torch: imported when run

    # Given a v5-style export: output0 [batch, 60, 7] (16 + 4 cells × 3 anchors; cx, cy, w, h, objectness,
    # apple, leaf). Each cell's boxes are centred on it with its anchors' sizes; objectness depends on the
    # anchor alone: σ(2) for the first anchor of a stride-16 cell, σ(3) for a stride-32 cell's, less than
    # 0.5 for the others.
    model = YoloV5StyleDetector(
        anchors=[[(16, 24), (16, 16), (24, 24)], [(24, 32), (24, 24), (32, 32)]],
        objectness=[[2.0, -1.0, -2.0], [3.0, -1.0, -2.0]],
    )
    network_id = served_export(api, convert, export_onnx(model, "v5"), "SQUASH")
    # nms_threshold 0.2: a stride-32 box overlaps each of its four stride-16 cells' boxes by IoU 0.26
    detection = {"yolo_output": {"output_tensor": "output0", "layout": "v5"}, "thresholds": [0.5, 0.5]}
    spec_id = detection_spec(api, network_id, detection | {"nms_threshold": 0.2})

    # When a 128×96 picture, squashed to 64×64 (input x = x / 2, y = y / 1.5), shows a red block on the
    # stride-16 cell of column 2, row 1 and a green block on the stride-32 cell of column 0, row 1
    scene = picture([((64, 24, 96, 48), RED), ((0, 48, 64, 96), GREEN)])
    (found,) = recognise(api, service, spec_id, [scene])

    # Then the green block's stride-32 box (24×32 centred at input (16, 48): (4, 32, 28, 64)) scores
    # σ(3) × 1 and suppresses its four stride-16 cells' boxes (σ(2)); the red block's box (16×24 centred at
    # (40, 24): (32, 12, 48, 36)) scores σ(2) × 1. Scores are objectness × class score, the v5 reading.
    assert found == [
        ("leaf", round(logistic(3.0), 6), bbox(8.0, 48.0, 56.0, 96.0)),
        ("apple", round(logistic(2.0), 6), bbox(64.0, 18.0, 96.0, 54.0)),
    ]


def test_yolov8_style_export_answers_boxes_in_the_letterboxed_pictures_pixels(
    api: Client,
    convert: Any,
    service: Service,  # noqa: F811
) -> None:
    from tests.unit.worker.yolo_exports import YoloV8StyleDetector, export_onnx  # torch: imported when run

    # Given a v8-style export: output0 [batch, 6, 20] (cx, cy, w, h, apple, leaf; 16 + 4 cells), each box
    # reaching 1 stride left, 0 up, 1 right and 1 down from its cell's centre: 2 cells wide, 1 high
    network_id = served_export(api, convert, export_onnx(YoloV8StyleDetector(distances=(1, 0, 1, 1)), "v8"), "FILL")
    detection = {"yolo_output": {"output_tensor": "output0", "layout": "v8"}, "thresholds": [0.5, 0.5]}
    spec_id = detection_spec(api, network_id, detection)

    # When a 128×96 picture, letterboxed to 64×64 (halved to 64×48, white padding below), shows a red,
    # a green and a yellow block, each on one stride-16 cell (in its halved pixels: column 1 row 0,
    # column 3 row 1, column 1 row 2), and a black picture goes in the same batch
    scene = picture([((32, 0, 64, 32), RED), ((96, 32, 128, 64), GREEN), ((32, 64, 64, 96), YELLOW)])
    found, nothing = recognise(api, service, spec_id, [scene, picture([])])

    # Then, in input pixels, red's box is x 8..40, y 8..24; green's x 40..72 (cut at the input's edge, 64),
    # y 24..40; yellow's x 8..40, y 40..56 (cut where the padding starts, 48), for both labels: doubled
    # into the picture's pixels. Equal scores come by label, then by row of the head.
    assert found == [
        ("apple", 1.0, bbox(16.0, 16.0, 80.0, 48.0)),
        ("apple", 1.0, bbox(16.0, 80.0, 80.0, 96.0)),
        ("leaf", 1.0, bbox(80.0, 48.0, 128.0, 80.0)),
        ("leaf", 1.0, bbox(16.0, 80.0, 80.0, 96.0)),
    ]
    assert nothing == []


def test_nms_free_end2end_export_answers_its_final_detections_unsuppressed_in_the_letterboxed_pictures_pixels(
    api: Client,
    convert: Any,
    service: Service,  # noqa: F811
) -> None:
    from tests.unit.worker.yolo_exports import YoloEnd2EndStyleDetector, export_onnx  # torch: imported when run

    # Given an NMS-free export as YOLOv10 and YOLO26 write theirs: output0 [batch, 300, 6] (x1, y1, x2, y2,
    # score, class id), the top-k of the v8-style head's (anchor, class) scores, zero rows after its 40 (20
    # cells × 2 labels); each box reaches 1 stride left, 0 up, 1 right and 1 down from its cell's centre.
    network_id = served_export(
        api, convert, export_onnx(YoloEnd2EndStyleDetector(distances=(1, 0, 1, 1)), "end2end"), "FILL"
    )
    # nms_threshold 0.2 would drop the second red box (IoU 1/3 with the first) if NMS ran: it does not.
    detection = {"yolo_output": {"output_tensor": "output0", "layout": "end2end"}, "thresholds": [0.5, 0.5]}
    spec_id = detection_spec(api, network_id, detection | {"nms_threshold": 0.2})
    # (a layout of another name is refused with the ones there are)
    unknown = {"yolo_output": {"output_tensor": "output0", "layout": "v10"}, "thresholds": [0.5, 0.5]}
    refused = api.post(
        "/v0.7/recognition/versions",
        headers=HEADERS,
        json={"spec_id": spec_id, "network_id": network_id, "post_processings": [{"detection": unknown}]},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json["error"].endswith("yolo_output.layout Input should be 'v5', 'v8' or 'end2end'.")

    # When a 128×96 picture, letterboxed to 64×64 (halved to 64×48, white padding below), shows a red block
    # over two stride-16 cells (in its halved pixels: columns 1 and 2 of row 0), a green one on column 3 of
    # row 1 and a yellow one on column 1 of row 2, and a black picture goes in the same batch
    scene = picture([((32, 0, 96, 32), RED), ((96, 32, 128, 64), GREEN), ((32, 64, 64, 96), YELLOW)])
    found, nothing = recognise(api, service, spec_id, [scene, picture([])])

    # Then, in input pixels, the red boxes are x 8..40 and 24..56, y 8..24; green's x 40..72 (cut at the
    # input's edge, 64), y 24..40; yellow's x 8..40, y 40..56 (cut where the padding starts, 48), one row per
    # label: doubled into the picture's pixels. Equal scores come by label, then by row: the top-k keeps
    # (anchor, class) order on ties.
    assert found == [
        ("apple", 1.0, bbox(16.0, 16.0, 80.0, 48.0)),
        ("apple", 1.0, bbox(48.0, 16.0, 112.0, 48.0)),
        ("apple", 1.0, bbox(16.0, 80.0, 80.0, 96.0)),
        ("leaf", 1.0, bbox(80.0, 48.0, 128.0, 80.0)),
        ("leaf", 1.0, bbox(16.0, 80.0, 80.0, 96.0)),
    ]
    assert nothing == []

    # And the same export bound to a spec of one label: its leaf detections (class id 1) fail the task with
    # a sentence, where dropping them would hide that the network has more classes than the spec labels.
    detection = {"yolo_output": {"output_tensor": "output0", "layout": "end2end"}, "thresholds": [0.5]}
    apples_only = detection_spec(api, network_id, detection, labels=FRUIT[:1])
    (task,) = served_tasks(api, service, apples_only, [scene])
    assert task["status"] == "error" and "of the end2end YOLO head has class id 1" in task["error"], task
    assert "the spec output has 1 labels, so a class id is a whole number from 0 to 0" in task["error"], task


def test_the_openapi_document_offers_every_yolo_layout() -> None:
    from tensorgate import openapi

    schema = openapi.document()["components"]["schemas"]["YoloOutput"]
    assert schema["properties"]["layout"]["enum"] == ["v5", "v8", "end2end"]
    assert "end2end" in schema["properties"]["layout"]["description"]
