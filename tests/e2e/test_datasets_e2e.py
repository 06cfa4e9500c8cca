"""Datasets through `make dev`'s stack: each layout uploaded with its presigned POST, a version, a seeded split."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.datasets_samples import coco_archive, coco_dataset, csv_labels, folder_per_class, jpeg, zip_archive
from tests.e2e.conftest import RunningStack
from tests.e2e.test_inference_e2e import wait_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLASSES = ("cat", "dog", "bird", "fish", "frog")


def create_dataset(stack: RunningStack, archive: bytes, **fields: Any) -> dict[str, Any]:
    """JSON create, the archive POSTed to the presigned URL as a client does, then the extraction waited for."""
    headers = {"X-API-KEY": stack.api_key}
    created = requests.post(f"{stack.url}/datasets/", headers=headers, json=fields, timeout=30)
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("d.zip", archive)}, timeout=60)
    assert posted.status_code in (200, 204), posted.text
    [task] = wait_all(stack, [created.json()["task_id"]], seconds=300)
    assert task["status"] == "success" and task["kind"] == "dataset", task
    return dict(requests.get(f"{stack.url}/datasets/{created.json()['id']}/", headers=headers, timeout=30).json())


def test_datasets_from_each_layout_a_transformation_version_a_reproducible_split_and_a_detection_evaluation(
    local_stack_with_workers: RunningStack,
) -> None:
    stack = local_stack_with_workers
    headers = {"X-API-KEY": stack.api_key}
    # A 500-image folder-per-class dataset with 3 files that are not images: 500 items, 3 item errors.
    pets = create_dataset(stack, zip_archive(folder_per_class(dict.fromkeys(CLASSES, 100), broken=3)), name="e2e pets")
    assert pets["status"] == "ready" and pets["extraction"]["items"] == 500
    assert pets["extraction"]["item_errors"] == 3 and pets["classes"] == {c: i for i, c in enumerate(sorted(CLASSES))}
    errors = requests.get(f"{stack.url}/datasets/{pets['id']}/errors", headers=headers, timeout=30).json()
    assert errors["count"] == 3 and all("broken" in error["item"] for error in errors["results"])

    # A 200-image COCO detection dataset with one annotation naming no image: 200 items, 1 item error.
    streets = create_dataset(stack, coco_archive(200, bad_annotation=True), name="e2e streets", kind="detection")
    assert streets["extraction"]["items"] == 200 and streets["extraction"]["item_errors"] == 1
    assert streets["classes"] == {"car": 1, "person": 2}
    check_detection_evaluation(stack, streets, coco_dataset(200)[1])

    # Images with a CSV of labels, one line naming an image the archive lacks.
    files = {f"{n}.jpg": jpeg((n * 10, 50, 50), seed=n) for n in range(20)}
    files["labels.csv"] = csv_labels(
        [[f"{n}.jpg", "odd" if n % 2 else "even"] for n in range(20)] + [["99.jpg", "odd"]]
    )
    tagged = create_dataset(stack, zip_archive(files), name="e2e csv")
    assert tagged["extraction"]["items"] == 20 and tagged["extraction"]["errors"][0]["item"].endswith("99.jpg")

    # A version by transformation: 12x8, mirrored, JPEG at quality 60.
    base = f"{stack.url}/datasets/{pets['id']}"
    steps = [{"resize": "12x8"}, {"horizontal_flip": True}, {"jpeg_quality": 60}]
    version = requests.post(
        f"{base}/versions", headers=headers, json={"name": "tiny", "transformations": steps}, timeout=30
    )
    assert version.status_code == 201, version.text
    [task] = wait_all(stack, [version.json()["task_id"]], seconds=300)
    assert task["status"] == "success" and task["kind"] == "transformation"
    items = requests.get(f"{base}/versions/tiny/items?limit=100", headers=headers, timeout=30).json()
    assert items["count"] == 500 and {(item["width"], item["height"]) for item in items["results"]} == {(12, 8)}

    # The same 80/10/10 split drawn twice with one seed: the same items, each class cut 80/10/10.
    parts = [{"name": "train", "percentage": 80}, {"name": "val", "percentage": 10}, {"name": "test", "percentage": 10}]
    splits = [
        requests.post(
            f"{base}/splits", headers=headers, json={"name": n, "parts": parts, "seed": 42}, timeout=30
        ).json()
        for n in ("first", "second")
    ]
    wait_all(stack, [split["task_id"] for split in splits], seconds=300)
    names = []
    for split in splits:
        ready = requests.get(f"{base}/splits/{split['id']}", headers=headers, timeout=30).json()
        assert ready["status"] == "ready" and ready["counts"] == {"train": 400, "val": 50, "test": 50}
        test_part = requests.get(f"{base}/splits/{split['id']}/items?part=test&limit=100", headers=headers, timeout=30)
        names.append([item["name"] for item in test_part.json()["results"]])
        labels = [item["labels"][0] for item in test_part.json()["results"]]
        assert all(labels.count(label) == 10 for label in CLASSES)
    assert names[0] == names[1]
    found = requests.get(
        f"{stack.url}/datasets/splits/lookup",
        params={"dataset": "e2e pets", "version": "v1", "name": "second"},
        headers=headers,
        timeout=30,
    )
    assert found.status_code == 200 and found.json()["id"] == splits[1]["id"]


def test_evaluation_of_a_network_whose_predictions_are_known_equals_hand_computed_metrics(
    local_stack_with_workers: RunningStack,
) -> None:
    """A network answering each image's channel means (so it predicts the image's colour) over 30 solid images of
    which 3 are labelled wrongly: accuracy 27/30, the confusion matrix and every per-class figure known by hand."""
    import io
    import json

    import numpy as np
    from PIL import Image
    from tensorgate_preprocessing.metrics import classification_metrics

    from tests.unit.worker.tiny_models import channel_mean_model, solid_image

    stack = local_stack_with_workers
    headers = {"X-API-KEY": stack.api_key}
    preprocessing = {
        "inputs": [
            {
                "tensor_name": "image",
                "image": {
                    "dimension_order": "NHWC",
                    "target_size": "8x8",
                    "resize_type": "SQUASH",
                    "pixel_scaling": 1.0,
                },
            }
        ],
        "batched_output": True,
    }
    network = requests.post(
        f"{stack.url}/networks/",
        headers=headers,
        data={"name": "colour means", "framework": "onnx", "preprocessing": json.dumps(preprocessing)},
        files={"model.onnx": ("model.onnx", channel_mean_model(8, 8))},
        timeout=30,
    ).json()
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    # (image colour, label): 10 red, 2 green labelled red, 8 green, 1 blue labelled green, 9 blue
    truth_and_colour = (
        [("red", "red")] * 10
        + [("red", "green")] * 2
        + [("green", "green")] * 8
        + [("green", "blue")]
        + [("blue", "blue")] * 9
    )
    files = {f"{n:02d}.png": solid_image(colours[colour], (16, 12)) for n, (_, colour) in enumerate(truth_and_colour)}
    files["labels.csv"] = csv_labels([[f"{n:02d}.png", label] for n, (label, _) in enumerate(truth_and_colour)])
    classes = {"red": 0, "green": 1, "blue": 2}
    dataset = create_dataset(stack, zip_archive(files), name="e2e colours", classes=classes)
    base = f"{stack.url}/datasets/{dataset['id']}"
    split = requests.post(
        f"{base}/splits",
        headers=headers,
        json={"name": "all", "parts": [{"name": "test", "percentage": 100}]},
        timeout=30,
    ).json()
    [deploy, drawn] = wait_all(stack, [network["task_id"], split["task_id"]], seconds=300)
    assert deploy["status"] == "success" and drawn["status"] == "success", (deploy, drawn)

    created = requests.post(
        f"{base}/splits/{split['id']}/evaluations",
        headers=headers,
        json={"network_id": network["id"], "part": "test", "output_tensor": "mean"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    [task] = wait_all(stack, [created.json()["task_id"]], seconds=300)
    assert task["status"] == "success" and task["kind"] == "evaluation", task
    evaluation = requests.get(
        f"{base}/splits/{split['id']}/evaluations/{created.json()['id']}/metrics", headers=headers, timeout=30
    ).json()
    metrics = evaluation["metrics"]
    assert evaluation["status"] == "ready" and metrics["items"] == 30 and metrics["failed"] == 0
    assert metrics["accuracy"] == pytest.approx(27 / 30) and metrics["top_5"] == 1.0
    assert metrics["confusion_matrix"] == [[10, 2, 0], [0, 8, 1], [0, 0, 9]]
    hand = {
        "red": {"precision": 1.0, "recall": 10 / 12, "support": 12},
        "green": {"precision": 8 / 10, "recall": 8 / 9, "support": 9},
        "blue": {"precision": 9 / 10, "recall": 1.0, "support": 9},
    }
    for label, expected in hand.items():
        f1 = 2 * expected["precision"] * expected["recall"] / (expected["precision"] + expected["recall"])
        assert metrics["per_class"][label] == pytest.approx(expected | {"f1": f1})
    # The library on the same answers agrees (predictions are the images' colours).
    truth = [classes[label] for label, _ in truth_and_colour]
    scores = np.eye(3)[[classes[colour] for _, colour in truth_and_colour]]
    library = classification_metrics(truth, scores, list(classes))
    assert {key: metrics[key] for key in library} == library

    png = requests.get(evaluation["plots"]["confusion_matrix"], timeout=30)
    assert png.status_code == 200
    with Image.open(io.BytesIO(png.content)) as picture:
        assert picture.format == "PNG" and picture.size == (500, 400)
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01


def check_detection_evaluation(stack: RunningStack, dataset: dict[str, Any], document: dict[str, Any]) -> None:
    """The 200-image COCO dataset split 90/10; a detector whose two boxes are fixed and whose scores are the image's
    red and green means, through a spec (car: box 0, person: box 1): the test part's mAP is pycocotools' on the
    detections the job answered (the detector's two boxes on every image), and the PR curves are a drawn PNG."""
    import io
    import json

    import numpy as np
    from PIL import Image
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from tests.integration.test_recognition_worker import two_box_detector

    headers = {"X-API-KEY": stack.api_key}
    base = f"{stack.url}/datasets/{dataset['id']}"
    parts = [{"name": "rest", "percentage": 90}, {"name": "test", "percentage": 10}]
    split = requests.post(
        f"{base}/splits", headers=headers, json={"name": "held", "parts": parts, "stratify": False}, timeout=30
    ).json()
    preprocessing = {
        "inputs": [
            {"tensor_name": "image", "image": {"dimension_order": "NHWC", "target_size": "4x4", "pixel_scaling": 1.0}}
        ]
    }
    network = requests.post(
        f"{stack.url}/networks/",
        headers=headers,
        data={"name": "two boxes", "framework": "onnx", "preprocessing": json.dumps(preprocessing)},
        files={"model.onnx": ("model.onnx", two_box_detector())},
        timeout=30,
    ).json()
    [deploy, drawn] = wait_all(stack, [network["task_id"], split["task_id"]], seconds=300)
    assert deploy["status"] == "success" and drawn["status"] == "success", (deploy, drawn)
    labels = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    spec = requests.post(
        f"{stack.url}/recognition/specs",
        headers=headers,
        json={"name": "streets", "outputs": [{"labels": {"roi": "BBOX", "exclusive": False, "labels": labels}}]},
        timeout=30,
    ).json()
    decoder = {"direct_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"}, "thresholds": [0.5, 0.5]}
    version = requests.post(
        f"{stack.url}/recognition/versions",
        headers=headers,
        json={"spec_id": spec["id"], "network_id": network["id"], "post_processings": [{"detection": decoder}]},
        timeout=30,
    )
    assert version.status_code == 201, version.text

    created = requests.post(
        f"{base}/splits/{split['id']}/evaluations",
        headers=headers,
        json={"recognition_spec_id": spec["id"], "part": "test"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    [task] = wait_all(stack, [created.json()["task_id"]], seconds=300)
    assert task["status"] == "success", task
    evaluation = requests.get(
        f"{base}/splits/{split['id']}/evaluations/{created.json()['id']}/metrics", headers=headers, timeout=30
    ).json()
    metrics = evaluation["metrics"]
    assert metrics["items"] == 20 and metrics["failed"] == 0

    # pycocotools on the test part's ground truth and the detections the detector makes on each (grey) image
    items = requests.get(f"{base}/splits/{split['id']}/items?part=test&limit=100", headers=headers, timeout=30)
    by_name = {image["file_name"]: image for image in document["images"]}
    chosen = [by_name[item["name"].removeprefix("images/")] for item in items.json()["results"]]
    order = {image["id"]: n + 1 for n, image in enumerate(chosen)}  # ids in the part's order: ties rank alike
    truth = COCO()
    truth.dataset = {
        "images": [image | {"id": order[image["id"]]} for image in chosen],
        "annotations": [
            annotation
            | {"image_id": order[annotation["image_id"]], "area": annotation["bbox"][2] * annotation["bbox"][3]}
            for annotation in document["annotations"]
            if annotation["image_id"] in order
        ],
        "categories": document["categories"],
    }
    truth.createIndex()
    # the detections as the job answered them: the detector's two boxes on every image, its scores as computed
    job = requests.get(f"{stack.url}/jobs/{evaluation['job_id']}", headers=headers, timeout=30).json()
    lines = [json.loads(text) for text in requests.get(job["results_url"], timeout=30).text.splitlines() if text]
    known = [[6.4, 9.6, 32.0, 28.8], [38.4, 24.0, 57.6, 43.2]]  # two_box_detector's corners in 64×48 pixels
    categories = {"car": 1, "person": 2}
    found = []
    for line in lines:
        (output,) = line["data"]["outputs"]
        for prediction in output["labels"]["predicted"] + output["labels"]["discarded"]:
            box = prediction["roi"]["bbox"]
            corners = [box["xmin"], box["ymin"], box["xmax"], box["ymax"]]
            assert any(corners == pytest.approx(candidate, abs=0.01) for candidate in known), corners
            found.append(
                {
                    "image_id": line["index"] + 1,
                    "category_id": categories[prediction["label_name"]],
                    "bbox": [corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1]],
                    "score": prediction["score"],
                }
            )
    assert len(found) == 4 * 20  # both labels in both boxes, on each image
    reference = COCOeval(truth, truth.loadRes(found), "bbox")
    reference.evaluate()
    reference.accumulate()
    precision = reference.eval["precision"][:, :, :, 0, -1]  # IoU × recall × category, all areas, 100 detections
    present = [name for name, category in categories.items() if truth.getAnnIds(catIds=[category])]
    assert sorted(metrics["per_class"]) == sorted(present)
    for name in present:
        k = categories[name] - 1
        assert metrics["per_class"][name]["ap_50"] == pytest.approx(precision[0, :, k].mean(), abs=1e-9)
        assert metrics["per_class"][name]["ap_50_95"] == pytest.approx(precision[:, :, k].mean(), abs=1e-9)
    assert metrics["map_50"] == pytest.approx(np.mean([metrics["per_class"][n]["ap_50"] for n in present]))

    png = requests.get(evaluation["plots"]["precision_recall"], timeout=30)
    with Image.open(io.BytesIO(png.content)) as picture:
        assert picture.format == "PNG" and picture.size == (700, 500)
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 10
