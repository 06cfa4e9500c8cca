"""Evaluation metrics of a network on labelled data: classification and detection (COCO's definition).

Classification (``classification_metrics``): accuracy (top-1), top-5, per-class precision, recall, F1 and support,
their macro averages, and the confusion matrix (rows: true class, columns: predicted class). A class never
predicted has precision 0, and one never present recall 0 (scikit-learn's ``zero_division=0``).

Detection (``detection_metrics``): average precision per class at IoU 0.5 and averaged over IoU 0.50:0.05:0.95,
and their means over the classes present (mAP@0.5, mAP@0.5:0.95), as pycocotools' COCOeval computes them for
bounding boxes over all areas with at most 100 detections per image: per image and class, detections by score
claim the unclaimed ground truth of highest IoU at or above the threshold; precision is made monotone and read at
101 recall points. The tests hold it to pycocotools itself. Boxes are ``[xmin, ymin, xmax, ymax]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100
TOP_K = 5


def classification_metrics(
    truth: Sequence[int], scores: np.ndarray | Sequence[Sequence[float]], labels: Sequence[str]
) -> dict[str, Any]:
    """`truth[i]` the class index of item i, `scores[i]` its K class scores (higher is more likely)."""
    matrix = np.asarray(scores, dtype=np.float64)
    actual = np.asarray(truth, dtype=np.int64)
    classes = len(labels)
    if matrix.ndim != 2 or matrix.shape != (len(actual), classes):
        raise ValueError(f"scores must be {len(actual)}x{classes} (items x classes), not {matrix.shape}")
    if len(actual) and (actual.min() < 0 or actual.max() >= classes):
        raise ValueError("a true class index is outside the labels")
    predicted = matrix.argmax(axis=1) if len(actual) else actual
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    k = min(TOP_K, classes)
    # The true class is in the top k when fewer than k classes score strictly higher than it.
    true_scores = matrix[np.arange(len(actual)), actual] if len(actual) else np.zeros(0)
    higher = (matrix > true_scores[:, None]).sum(axis=1) if len(actual) else np.zeros(0)
    true_positives = np.diag(confusion).astype(np.float64)
    predicted_totals = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positives, predicted_totals, out=np.zeros(classes), where=predicted_totals > 0)
    recall = np.divide(true_positives, support, out=np.zeros(classes), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(classes), where=both > 0)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    items = len(actual)
    return {
        "items": items,
        "accuracy": float(true_positives.sum() / items) if items else 0.0,
        "top_5": float((higher < k).mean()) if items else 0.0,
        "top_k": k,
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": confusion.tolist(),
    }


@dataclass(frozen=True)
class Boxes:
    """One image's boxes: `boxes` N×4 [xmin, ymin, xmax, ymax], `labels` N class indices, `scores` N (detections)."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None

    @classmethod
    def of(
        cls, boxes: Sequence[Sequence[float]], labels: Sequence[int], scores: Sequence[float] | None = None
    ) -> Boxes:
        return cls(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64).reshape(-1),
            None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1),
        )


def box_iou(detections: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """IoU of every detection with every ground truth box (D×G), areas as width × height (COCO)."""
    if len(detections) == 0 or len(truths) == 0:
        return np.zeros((len(detections), len(truths)))
    left = np.maximum(detections[:, None, 0], truths[None, :, 0])
    top = np.maximum(detections[:, None, 1], truths[None, :, 1])
    right = np.minimum(detections[:, None, 2], truths[None, :, 2])
    bottom = np.minimum(detections[:, None, 3], truths[None, :, 3])
    overlap = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_d = (detections[:, 2] - detections[:, 0]) * (detections[:, 3] - detections[:, 1])
    area_t = (truths[:, 2] - truths[:, 0]) * (truths[:, 3] - truths[:, 1])
    union = area_d[:, None] + area_t[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def _match(detections: np.ndarray, truths: np.ndarray, threshold: float) -> np.ndarray:
    """Which detections (already in score order) claim a ground truth at `threshold` (COCOeval.evaluateImg)."""
    ious = box_iou(detections, truths)
    claimed = np.zeros(len(truths), dtype=bool)
    matched = np.zeros(len(detections), dtype=bool)
    for d in range(len(detections)):
        best, chosen = min(threshold, 1 - 1e-10), -1
        for g in range(len(truths)):
            if claimed[g] or ious[d, g] < best:
                continue
            best, chosen = ious[d, g], g
        if chosen >= 0:
            claimed[chosen] = True
            matched[d] = True
    return matched


def _average_precision(matched: np.ndarray, scores: np.ndarray, positives: int) -> tuple[float, np.ndarray, np.ndarray]:
    """AP at 101 recall points, and the precision-recall curve (COCOeval.accumulate)."""
    order = np.argsort(-scores, kind="mergesort")
    hits = matched[order]
    true_positives = np.cumsum(hits).astype(np.float64)
    false_positives = np.cumsum(~hits).astype(np.float64)
    recall = true_positives / positives
    precision = true_positives / (true_positives + false_positives + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.array([precision[i] if i < len(precision) else 0.0 for i in at])
    return float(sampled.mean()), recall, precision


def detection_metrics(truths: Sequence[Boxes], detections: Sequence[Boxes], labels: Sequence[str]) -> dict[str, Any]:
    """`truths[i]` and `detections[i]` are image i's ground truth and detections (with scores)."""
    if len(truths) != len(detections):
        raise ValueError("give one ground truth and one detection set per image")
    per_class: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    for index, label in enumerate(labels):
        positives = sum(int((truth.labels == index).sum()) for truth in truths)
        if positives == 0:
            continue
        aps = []
        for t, threshold in enumerate(IOU_THRESHOLDS):
            matched_all, scores_all = [], []
            for truth, found in zip(truths, detections, strict=True):
                if found.scores is None:
                    raise ValueError("detections need scores")
                mine = np.flatnonzero(found.labels == index)
                mine = mine[np.argsort(-found.scores[mine], kind="mergesort")][:MAX_DETECTIONS]
                matched_all.append(_match(found.boxes[mine], truth.boxes[truth.labels == index], threshold))
                scores_all.append(found.scores[mine])
            ap, recall, precision = _average_precision(
                np.concatenate(matched_all) if matched_all else np.zeros(0, dtype=bool),
                np.concatenate(scores_all) if scores_all else np.zeros(0),
                positives,
            )
            aps.append(ap)
            if t == 0:
                curves[label] = {"recall": recall.tolist(), "precision": precision.tolist()}
        per_class[label] = {"ap_50": aps[0], "ap_50_95": float(np.mean(aps)), "ground_truths": positives}
    present = list(per_class.values())
    return {
        "images": len(truths),
        "map_50": float(np.mean([c["ap_50"] for c in present])) if present else 0.0,
        "map_50_95": float(np.mean([c["ap_50_95"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "pr_curves_iou_50": curves,
    }
