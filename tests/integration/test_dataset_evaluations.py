"""Evaluations through a recognition version, under moto: the API, the dataset worker and the inference worker."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tensorgate.layout import job_results_key
from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.datasets_samples import zip_archive
from tests.integration.test_datasets_api import create, run_dataset_worker
from tests.integration.test_recognition_worker import UNIT_PIXELS, two_box_detector
from tests.integration.test_worker import Service
from tests.unit.worker.tiny_models import solid_image

HEADERS = {"X-API-KEY": DEV_KEY}
SIZE = (40, 30)
# two_box_detector's boxes in a 40×30 image's pixels (its normalised corners, squashed): label 0 scores box 0 with
# the red mean, label 1 box 1 with the green mean; every other (label, box) pair scores 0.
BOX_0 = [4.0, 6.0, 20.0, 18.0]
BOX_1 = [24.0, 15.0, 36.0, 27.0]
SHIFTED_1 = [26.8, 15.0, 38.8, 27.0]  # IoU 9.2 / 14.8 = 0.62 with box 1
CORNER = [0.0, 24.0, 6.0, 30.0]  # overlaps neither box
RED, YELLOW, GREEN, BLUE = (255, 0, 0), (255, 255, 0), (0, 200, 0), (0, 0, 255)
# (colour, ground truth boxes by category): apple 1 and leaf 2 are the spec's labels; stem 3 is not.
IMAGES = [
    (RED, [("apple", BOX_0)]),
    (RED, [("apple", BOX_0)]),
    (RED, [("apple", BOX_0)]),
    (YELLOW, [("apple", BOX_0), ("leaf", BOX_1)]),
    (GREEN, [("leaf", SHIFTED_1), ("stem", CORNER)]),
    (BLUE, [("apple", CORNER)]),
]
CATEGORIES = {"apple": 1, "leaf": 2, "stem": 3}


def coco_document() -> tuple[dict[str, bytes], dict[str, Any]]:
    files = {f"images/{n}.png": solid_image(colour, SIZE) for n, (colour, _) in enumerate(IMAGES)}
    annotations = [
        {
            "id": len(IMAGES) * n + k + 1,
            "image_id": n + 1,
            "category_id": CATEGORIES[label],
            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
            "area": (box[2] - box[0]) * (box[3] - box[1]),
            "iscrowd": 0,
        }
        for n, (_, boxes) in enumerate(IMAGES)
        for k, (label, box) in enumerate(boxes)
    ]
    document = {
        "images": [
            {"id": n + 1, "file_name": f"{n}.png", "width": SIZE[0], "height": SIZE[1]} for n in range(len(IMAGES))
        ],
        "annotations": annotations,
        "categories": [{"id": identifier, "name": name} for name, identifier in CATEGORIES.items()],
    }
    return files, document


def known_detections() -> list[dict[str, Any]]:
    """What the detector answers for each image, COCO results form: both labels in both boxes."""
    found = []
    for n, (colour, _) in enumerate(IMAGES):
        scores = {("apple", 0): colour[0] / 255, ("leaf", 1): colour[1] / 255, ("apple", 1): 0.0, ("leaf", 0): 0.0}
        for (label, box), score in scores.items():
            x1, y1, x2, y2 = (BOX_0, BOX_1)[box]
            found.append(
                {
                    "image_id": n + 1,
                    "category_id": CATEGORIES[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": score,
                }
            )
    return found


def pycocotools_ap(document: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """AP@0.5 and AP@0.5:0.95 per category by pycocotools' COCOeval on the known detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO()
    truth.dataset = json.loads(json.dumps(document))
    truth.createIndex()
    evaluation = COCOeval(truth, truth.loadRes(known_detections()), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # IoU × recall × category, all areas, 100 detections
    return {
        name: (float(precision[0, :, k].mean()), float(precision[:, :, k].mean())) for k, name in enumerate(CATEGORIES)
    }


@pytest.fixture
def worker(aws: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Service:
    # The evaluation looks at its job again at once rather than seconds later.
    monkeypatch.setattr("tensorgate.services.dataset_jobs.evaluation.evaluation_check_delay", lambda checks: 0)
    return Service(aws, tmp_path)


def test_detection_evaluation_through_a_recognition_version_equals_hand_computed_and_pycocotools_map(
    api: Client, aws: dict[str, Any], worker: Service
) -> None:
    # Given a detection dataset of 6 images whose boxes the detector finds exactly, shifted, or not at all
    files, document = coco_document()
    files["instances.json"] = json.dumps(document).encode()
    dataset = create(api, aws, zip_archive(files), name="orchard", kind="detection")
    assert dataset["status"] == "ready" and dataset["extraction"]["items"] == len(IMAGES), dataset
    split = api.post(
        f"/v0.7/datasets/{dataset['id']}/splits",
        headers=HEADERS,
        json={"name": "all", "parts": [{"name": "test", "percentage": 100}], "stratify": False},
    ).json
    run_dataset_worker(aws)
    # and a recognition version reading the detector's boxes, whose spec knows apple and leaf but not stem
    network = worker.network(
        two_box_detector(),
        preprocessing=UNIT_PIXELS,
        name_map={"pixels": "image", "boxes": "boxes", "scores": "scores"},
    )
    labels = [{"id": 1, "name": "apple"}, {"id": 2, "name": "leaf"}]
    spec = api.post(
        "/v0.7/recognition/specs",
        headers=HEADERS,
        json={"name": "orchard", "outputs": [{"labels": {"roi": "BBOX", "exclusive": False, "labels": labels}}]},
    ).json
    decoder = {"direct_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"}, "thresholds": [0.5, 0.5]}
    version = api.post(
        "/v0.7/recognition/versions",
        headers=HEADERS,
        json={"spec_id": spec["id"], "network_id": network.network_id, "post_processings": [{"detection": decoder}]},
    )
    assert version.status_code == 201, version.json

    # When the split's part is evaluated through the spec (its current version)
    base = f"/v0.7/datasets/{dataset['id']}/splits/{split['id']}/evaluations"
    created = api.post(base, headers=HEADERS, json={"recognition_spec_id": spec["id"], "part": "test"})
    assert created.status_code == 201, created.json
    assert created.json["kind"] == "detection" and created.json["recognition_spec_id"] == spec["id"]
    run_dataset_worker(aws, rounds=1)  # the batch job starts
    job_id = api.get(f"{base}/{created.json['id']}/metrics", headers=HEADERS).json["job_id"]
    job = api.get(f"/v0.7/jobs/{job_id}", headers=HEADERS).json
    worker.serve(list(range(job_id + 1, job_id + 1 + job["total"])))
    run_dataset_worker(aws)  # the job ended: scored

    # Then the metrics are the hand-computed ones: apple's 4 exact boxes of 5 rank first at every IoU (AP 81/101);
    # leaf's two boxes match at IoU 0.50-0.60, only the yellow one above (AP 51/101 there); stem is never predicted.
    evaluation = api.get(f"{base}/{created.json['id']}/metrics", headers=HEADERS).json
    assert evaluation["status"] == "ready", evaluation
    metrics = evaluation["metrics"]
    assert metrics["items"] == len(IMAGES) and metrics["failed"] == 0
    assert metrics["classes_without_label"] == ["stem"]
    apple, leaf_50_95 = 81 / 101, (3 * 1.0 + 7 * 51 / 101) / 10
    expected = {"apple": (apple, apple), "leaf": (1.0, leaf_50_95), "stem": (0.0, 0.0)}
    for label, (ap_50, ap_50_95) in expected.items():
        assert metrics["per_class"][label]["ap_50"] == pytest.approx(ap_50, abs=1e-9), label
        assert metrics["per_class"][label]["ap_50_95"] == pytest.approx(ap_50_95, abs=1e-9), label
    assert metrics["map_50"] == pytest.approx((apple + 1.0) / 3, abs=1e-9)
    assert metrics["map_50_95"] == pytest.approx((apple + leaf_50_95) / 3, abs=1e-9)
    # and pycocotools on the detections the detector is known to make agrees
    for label, (ap_50, ap_50_95) in pycocotools_ap(document).items():
        assert metrics["per_class"][label]["ap_50"] == pytest.approx(ap_50, abs=1e-9), label
        assert metrics["per_class"][label]["ap_50_95"] == pytest.approx(ap_50_95, abs=1e-9), label
    # and the precision-recall curves are a drawn PNG
    assert list(evaluation["plots"]) == ["precision_recall"]
    key = f"datasets/dev/{dataset['id']}/evaluations/{created.json['id']}/precision_recall.png"
    png = aws["session"].client("s3").get_object(Bucket=aws["template"].physical_name("ModelBucket"), Key=key)
    with Image.open(io.BytesIO(png["Body"].read())) as picture:
        assert picture.format == "PNG" and picture.size == (700, 500)
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005
    task = api.get(f"/v0.7/tasks/{created.json['task_id']}", headers=HEADERS).json
    assert task["status"] == "success" and task["data"]["map_50"] == pytest.approx(metrics["map_50"])


def test_classification_evaluation_through_a_version_maps_labels_by_name_and_never_predicts_a_class_it_lacks(
    api: Client, aws: dict[str, Any], worker: Service
) -> None:
    # Given solid images labelled by colour, purple among them, and a version answering each image's channel means
    # as red, green and blue (in that order, unlike the dataset's class ids), with no label purple
    colours = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230), "purple": (180, 0, 200)}
    labelled = ["red", "red", "green", "green", "blue", "purple"]
    files = {f"{n}.png": solid_image(colours[label], (8, 8)) for n, label in enumerate(labelled)}
    files["labels.csv"] = "".join(f"{n}.png,{label}\n" for n, label in enumerate(labelled)).encode()
    dataset = create(api, aws, zip_archive(files), name="colours")
    assert dataset["classes"] == {"blue": 0, "green": 1, "purple": 2, "red": 3}, dataset
    split = api.post(
        f"/v0.7/datasets/{dataset['id']}/splits",
        headers=HEADERS,
        json={"name": "all", "parts": [{"name": "test", "percentage": 100}]},
    ).json
    run_dataset_worker(aws)
    network = worker.network(preprocessing=UNIT_PIXELS)
    labels = [{"id": 10, "name": "red"}, {"id": 11, "name": "green"}, {"id": 12, "name": "blue"}]
    spec = api.post(
        "/v0.7/recognition/specs",
        headers=HEADERS,
        json={"name": "colours", "outputs": [{"labels": {"roi": "NONE", "exclusive": True, "labels": labels}}]},
    ).json
    post = {"classification": {"output_tensor": "channel_mean", "thresholds": [0.9, 0.9, 0.9]}}
    version = api.post(
        "/v0.7/recognition/versions",
        headers=HEADERS,
        json={"spec_id": spec["id"], "network_id": network.network_id, "post_processings": [post]},
    ).json
    base = f"/v0.7/datasets/{dataset['id']}/splits/{split['id']}/evaluations"
    # (a version is read by its labels, not a tensor; two targets at once name nothing)
    for body, mentions in (
        ({"recognition_version_id": version["id"], "output_tensor": "channel_mean"}, "output_tensor"),
        ({"recognition_version_id": version["id"], "network_id": network.network_id}, "exactly one target"),
    ):
        refused = api.post(base, headers=HEADERS, json=body)
        assert refused.status_code == 400 and mentions in refused.json["error"], refused.json

    # When the part is evaluated through the version
    created = api.post(base, headers=HEADERS, json={"recognition_version_id": version["id"]})
    assert created.status_code == 201, created.json
    run_dataset_worker(aws, rounds=1)
    job_id = api.get(f"{base}/{created.json['id']}/metrics", headers=HEADERS).json["job_id"]
    job = api.get(f"/v0.7/jobs/{job_id}", headers=HEADERS).json
    worker.serve(list(range(job_id + 1, job_id + 1 + job["total"])))
    run_dataset_worker(aws)

    # Then each class is scored by the label of its name, under the thresholds too; purple is never predicted
    metrics = api.get(f"{base}/{created.json['id']}/metrics", headers=HEADERS).json["metrics"]
    assert metrics["items"] == 6 and metrics["failed"] == 0
    assert metrics["labels"] == ["blue", "green", "purple", "red"]
    assert metrics["classes_without_label"] == ["purple"]
    assert metrics["confusion_matrix"] == [[1, 0, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 2]]
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    assert metrics["per_class"]["purple"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["per_class"]["blue"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})

    # Through an endpoint serving that version: the same answers, the same metrics
    endpoint = api.post(
        "/v0.7/endpoints", headers=HEADERS, json={"name": "colours", "recognition_version_id": version["id"]}
    )
    assert endpoint.status_code == 201, endpoint.json
    through = api.post(base, headers=HEADERS, json={"endpoint_id": endpoint.json["id"]})
    assert through.status_code == 201 and through.json["endpoint_id"] == endpoint.json["id"], through.json
    run_dataset_worker(aws, rounds=1)
    job_id = api.get(f"{base}/{through.json['id']}/metrics", headers=HEADERS).json["job_id"]
    worker.serve(list(range(job_id + 1, job_id + 7)))
    run_dataset_worker(aws)
    served = api.get(f"{base}/{through.json['id']}/metrics", headers=HEADERS).json["metrics"]
    assert {key: served[key] for key in ("confusion_matrix", "per_class", "accuracy")} == {
        key: metrics[key] for key in ("confusion_matrix", "per_class", "accuracy")
    }

    # A batch job takes the split's part as its input too: its items are the part's images, in the part's order
    split_input = {"dataset_id": dataset["id"], "split_id": split["id"], "part": "test"}
    for bad, mentions in (({**split_input, "part": "train"}, "no part"), ({**split_input, "split_id": 999}, "999")):
        refused = api.post(
            "/v0.7/jobs",
            headers=HEADERS,
            json={"name": "m", "network_id": network.network_id, "inputs": {"split": bad}},
        )
        assert refused.status_code == 400 and mentions in refused.json["error"], refused.json
    job = api.post(
        "/v0.7/jobs",
        headers=HEADERS,
        json={"name": "means", "network_id": network.network_id, "inputs": {"split": split_input}},
    ).json
    assert job["inputs"] == {"kind": "split", **split_input, "count": 6} and job["total"] == 6, job
    worker.serve(list(range(job["id"] + 1, job["id"] + 7)))
    items = api.get(f"/v0.7/datasets/{dataset['id']}/splits/{split['id']}/items?part=test", headers=HEADERS).json
    job = api.get(f"/v0.7/jobs/{job['id']}", headers=HEADERS).json
    bucket = aws["template"].physical_name("ModelBucket")
    assert job["status"] == "success" and job["results_url"]
    body = aws["session"].client("s3").get_object(Bucket=bucket, Key=job_results_key("dev", job["id"]))["Body"].read()
    lines = [json.loads(text) for text in body.splitlines()]
    assert [line["status"] for line in lines] == ["success"] * 6
    for line, item in zip(lines, items["results"], strict=True):
        mean = next(t["data"] for t in line["data"]["tensors"] if t["name"] == "mean")
        assert mean == pytest.approx([channel / 255 for channel in colours[item["labels"][0]]], abs=1e-6)
        assert line["input"].startswith(f"s3://{bucket}/datasets/dev/{dataset['id']}/versions/v1/images/")
