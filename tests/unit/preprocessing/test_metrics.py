"""Evaluation metrics: classification against plain hand-written references, detection against pycocotools."""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tensorgate_preprocessing.metrics import Boxes, classification_metrics, detection_metrics

from functions.dataset_worker.plots import confusion_matrix_png, precision_recall_png

LABELS = ["cat", "dog", "bird", "fish", "frog", "deer"]


def test_classification_metrics_equal_hand_computed_values() -> None:
    # Given 6 items of 3 classes whose predictions are known: 4 right, one dog called cat, one bird called dog
    truth = [0, 0, 1, 1, 2, 2]
    predicted = [0, 0, 0, 1, 2, 1]
    scores = np.full((6, 3), 0.1)
    scores[np.arange(6), predicted] = 0.8
    # When
    metrics = classification_metrics(truth, scores, ["cat", "dog", "bird"])
    # Then: precision cat 2/3, recall 1; dog 1/2 and 1/2; bird 1 and 1/2
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["top_5"] == 1.0 and metrics["top_k"] == 3
    assert metrics["per_class"]["cat"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["per_class"]["dog"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["bird"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert metrics["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_classification_metrics_match_a_plain_loop_reference_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, len(LABELS), 400)
    scores = rng.random((400, len(LABELS))) + np.eye(len(LABELS))[truth] * rng.random((400, 1)) * 0.8
    metrics = classification_metrics(truth.tolist(), scores, LABELS)
    top1 = [int(np.argmax(row)) for row in scores]
    top5 = [
        int(t) in sorted(range(len(LABELS)), key=lambda c: -row[c])[:5] for t, row in zip(truth, scores, strict=True)
    ]
    assert metrics["accuracy"] == pytest.approx(sum(p == t for p, t in zip(top1, truth, strict=True)) / 400)
    assert metrics["top_5"] == pytest.approx(sum(top5) / 400)
    for c, label in enumerate(LABELS):
        tp = sum(p == c and t == c for p, t in zip(top1, truth, strict=True))
        fp = sum(p == c and t != c for p, t in zip(top1, truth, strict=True))
        fn = sum(p != c and t == c for p, t in zip(top1, truth, strict=True))
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        expected = {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}
        assert {k: metrics["per_class"][label][k] for k in expected} == pytest.approx(expected)


def generated_detections(images: int, seed: int) -> tuple[list[Boxes], list[Boxes]]:
    """Ground truth boxes and detections near them (shifted, some missed, some spurious), two classes."""
    rng = random.Random(seed)
    truths, found = [], []
    for _ in range(images):
        boxes, labels, d_boxes, d_labels, d_scores = [], [], [], [], []
        for _ in range(rng.randint(0, 4)):
            x, y, w, h = rng.uniform(0, 200), rng.uniform(0, 150), rng.uniform(8, 60), rng.uniform(8, 60)
            label = rng.randint(0, 1)
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
            if rng.random() < 0.8:
                dx, dy = rng.gauss(0, w * 0.15), rng.gauss(0, h * 0.15)
                d_boxes.append([x + dx, y + dy, x + dx + w * rng.uniform(0.8, 1.2), y + dy + h * rng.uniform(0.8, 1.2)])
                d_labels.append(label if rng.random() < 0.9 else 1 - label)
                d_scores.append(round(rng.random(), 3))
        for _ in range(rng.randint(0, 2)):
            x, y = rng.uniform(0, 200), rng.uniform(0, 150)
            d_boxes.append([x, y, x + rng.uniform(8, 40), y + rng.uniform(8, 40)])
            d_labels.append(rng.randint(0, 1))
            d_scores.append(round(rng.random(), 3))
        truths.append(Boxes.of(boxes, labels))
        found.append(Boxes.of(d_boxes, d_labels, d_scores))
    return truths, found


def coco_evaluation(truths: list[Boxes], found: list[Boxes]) -> COCOeval:
    def xywh(box: np.ndarray) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    annotations, results = [], []
    for image, (truth, detections) in enumerate(zip(truths, found, strict=True), start=1):
        for box, label in zip(truth.boxes, truth.labels, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": int(label) + 1,
                    "bbox": xywh(box),
                    "area": float(w * h),
                    "iscrowd": 0,
                }
            )
        assert detections.scores is not None
        for box, label, score in zip(detections.boxes, detections.labels, detections.scores, strict=True):
            results.append({"image_id": image, "category_id": int(label) + 1, "bbox": xywh(box), "score": float(score)})
    ground = COCO()
    ground.dataset = {
        "images": [{"id": i, "width": 300, "height": 300} for i in range(1, len(truths) + 1)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


@pytest.mark.parametrize("seed", [1, 2])
def test_detection_map_equals_pycocotools_overall_and_per_class(seed: int) -> None:
    # Given 200 images of generated boxes and detections near them
    truths, found = generated_detections(200, seed)
    # When
    ours = detection_metrics(truths, found, ["car", "person"])
    coco = coco_evaluation(truths, found)
    # Then: COCOeval's AP (all areas, 100 detections) at 0.5:0.95 and 0.5, overall and per class
    assert ours["map_50_95"] == pytest.approx(coco.stats[0], abs=1e-9)
    assert ours["map_50"] == pytest.approx(coco.stats[1], abs=1e-9)
    precision = coco.eval["precision"]  # [iou, recall, class, area, max detections]
    for k, label in enumerate(["car", "person"]):
        assert ours["per_class"][label]["ap_50"] == pytest.approx(precision[0, :, k, 0, 2].mean(), abs=1e-9)
        assert ours["per_class"][label]["ap_50_95"] == pytest.approx(precision[:, :, k, 0, 2].mean(), abs=1e-9)
    assert 0.2 < ours["map_50"] < 0.95  # the generated detections are neither hopeless nor perfect


def test_perfect_detections_score_one_and_a_class_without_ground_truth_is_left_out() -> None:
    truths = [Boxes.of([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 0])]
    found = [Boxes.of([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 0], [0.9, 0.8])]
    metrics = detection_metrics(truths, found, ["car", "person"])
    assert metrics["map_50"] == 1.0 and metrics["map_50_95"] == 1.0 and list(metrics["per_class"]) == ["car"]


def test_plots_are_pngs_of_their_size_with_drawn_content() -> None:
    truths, found = generated_detections(50, 5)
    curves = detection_metrics(truths, found, ["car", "person"])["pr_curves_iou_50"]
    for data, size in (
        (confusion_matrix_png([[5, 1, 0], [2, 7, 1], [0, 0, 9]], ["cat", "dog", "bird"]), (500, 400)),
        (precision_recall_png(curves), (700, 500)),
    ):
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "PNG" and picture.size == size
            pixels = np.asarray(picture.convert("L"))
        assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # drawn on, not a blank page
