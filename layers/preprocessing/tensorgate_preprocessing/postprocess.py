"""Model outputs to the v0.7 result: selected tensors, detections in original pixels, top-k labels.

For one sample, with outputs keyed by the user-facing tensor names (the worker maps ONNX names back):

- ``requested_tensors(postprocessings, output_tensors)``: the tensors to return. A request may name any
  tensor a postprocessing lists; without ``output_tensors`` every ``tensors_output`` tensor is returned.
- ``tensor_results(outputs, names)``: ``[{"name", "shape", "data"}]``, data flattened row-major, shape with
  the batch dimension of 1 (non-finite floats become null, which JSON can carry).
- ``detect(boxes, scores, transform, settings, labels)``: ``standard_output``. Boxes are N×4
  ``xmin, ymin, xmax, ymax`` normalised to the network input, scores N×K. Per class: score >=
  ``bounding_box_threshold``, then greedy NMS dropping boxes whose IoU with a kept one exceeds
  ``iou_threshold``; then the ``max_objects`` best overall. Boxes map back through the image's
  ``ImageTransform`` to original pixels, clipped to the region the network saw:
  ``{"box": [x1, y1, x2, y2], "label", "score"}``.
- ``classify(scores, labels, top_k)``: ``tensors_output`` with a label list: the ``top_k`` best labels.
- ``postprocess(...)`` runs all of it for one sample: ``{"tensors": [...], "outputs": [...]?}``.
- ``recognize(outputs, labels, post_processings, transform, ...)``: a recognition version's labelled
  predictions (DESIGN §7), one ``{"labels": {"predicted", "discarded"}}`` per spec output.
  Classification: each label's score against its threshold. Detection: a decoder
  (``decode_detection``: ``direct_output`` boxes and scores, SSD-style ``anchored_output`` deltas against
  anchors, or a ``yolo_output`` head) gives normalised boxes and per-label scores; then per label,
  greedy NMS (``nms_threshold``) over the boxes with a finite score (none for an ``end2end`` YOLO head,
  whose network already suppressed its boxes), then each kept box against the
  label's threshold, boxes in original pixels with a ``region_id``. Predicted and discarded are each
  sorted best first (ties: lower label index, then lower row); ``max_predictions`` caps the two
  together, predicted first; discarded is only filled with ``show_discarded``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidModelOutput, PreprocessingError, UnknownOutputTensor
from .geometry import ImageTransform
from .spec import (
    AnchoredOutput,
    DetectionPostProcessing,
    DetectionSettings,
    PostprocessingSpec,
    RecognitionPostProcessing,
    YoloOutput,
)

BOX_DECIMALS = 2
SCORE_DECIMALS = 6
MAX_REGIONS_PER_LABEL = 1000


class InvalidDetectionSettings(PreprocessingError):
    """A request override of bounding_box_threshold, iou_threshold or max_objects out of range."""


def split_batch(outputs: Mapping[str, np.ndarray], count: int) -> list[dict[str, np.ndarray]]:
    """Batch outputs (N first) as one dict per sample, each keeping a batch dimension of 1."""
    for name, array in outputs.items():
        if np.ndim(array) == 0 or np.shape(array)[0] != count:
            raise InvalidModelOutput(
                f"Output {name!r} has shape {list(np.shape(array))}; its first dimension should be the "
                f"batch size {count}."
            )
    return [{name: np.asarray(array)[row : row + 1] for name, array in outputs.items()} for row in range(count)]


def requested_tensors(postprocessings: Sequence[PostprocessingSpec], output_tensors: Sequence[str] | None) -> list[str]:
    """The tensors a result carries: the requested ones, else every tensors_output tensor."""
    if output_tensors is None:
        names: list[str] = []
        for post in postprocessings:
            if post.tensors_output is not None:
                names.extend(name for name in post.tensors_output.tensors if name not in names)
        return names
    allowed = {name for post in postprocessings for name in post.tensor_names()}
    unknown = [name for name in output_tensors if name not in allowed]
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise UnknownOutputTensor(
            f"output_tensors names {', '.join(unknown)}, which no postprocessing of this network lists "
            f"(listed: {listed})."
        )
    return list(dict.fromkeys(output_tensors))


def tensor_results(outputs: Mapping[str, np.ndarray], names: Sequence[str]) -> list[dict[str, Any]]:
    """The v0.7 ``tensors`` entries for one sample."""
    results = []
    for name in names:
        array = _output(outputs, name)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            data = [value if math.isfinite(value) else None for value in array.ravel().tolist()]
        elif array.dtype.kind in "SO":
            data = [_text(value) for value in array.ravel().tolist()]
        else:
            data = array.ravel().tolist()
        results.append({"name": name, "shape": list(array.shape), "data": data})
    return results


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _output(outputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in outputs:
        raise InvalidModelOutput(f"The model produced no output tensor named {name!r}.")
    return np.asarray(outputs[name])


def detection_settings(defaults: DetectionSettings, overrides: Mapping[str, Any] | None = None) -> DetectionSettings:
    """The network's detection settings with a request's overrides, validated."""
    if not overrides:
        return defaults
    from pydantic import ValidationError

    known = {"bounding_box_threshold", "iou_threshold", "max_objects"}
    values = {key: getattr(defaults, key) for key in known}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidDetectionSettings(
            f"Unknown detection setting(s) {', '.join(unknown)}; use bounding_box_threshold, iou_threshold "
            "or max_objects."
        )
    try:
        return DetectionSettings.model_validate({**values, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidDetectionSettings(f"Detection setting {field}: {first['msg']}.") from None


def detect(
    boxes: np.ndarray,
    scores: np.ndarray,
    transform: ImageTransform,
    settings: DetectionSettings,
    labels: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """``standard_output`` for one sample: thresholded, per-class NMS, best ``max_objects``, original pixels."""
    boxes, scores = _detection_arrays(boxes, scores, labels)
    candidates: list[tuple[float, int, int]] = []
    for label_index in range(scores.shape[1]):
        class_scores = scores[:, label_index]
        selected = np.flatnonzero(class_scores >= settings.bounding_box_threshold)
        if selected.size == 0:
            continue
        kept = _non_maximum_suppression(
            boxes[selected], class_scores[selected], settings.iou_threshold, settings.max_objects
        )
        candidates.extend((float(class_scores[selected[k]]), label_index, int(selected[k])) for k in kept)
    candidates.sort(key=lambda item: (-item[0], item[1], item[2]))

    region = transform.visible_region()
    detections = []
    for score, label_index, row in candidates:
        x1, y1, x2, y2 = transform.normalized_to_original(boxes[row].tolist())
        x1, x2 = sorted((min(max(x1, region[0]), region[2]), min(max(x2, region[0]), region[2])))
        y1, y2 = sorted((min(max(y1, region[1]), region[3]), min(max(y2, region[1]), region[3])))
        if x2 <= x1 or y2 <= y1:
            continue  # entirely in FILL padding or outside the picture
        detections.append(
            {
                "box": [round(value, BOX_DECIMALS) for value in (x1, y1, x2, y2)],
                "label": labels[label_index] if labels is not None else str(label_index),
                "score": round(score, SCORE_DECIMALS),
            }
        )
        if len(detections) == settings.max_objects:
            break
    return detections


def _detection_arrays(
    boxes: np.ndarray, scores: np.ndarray, labels: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    while boxes.ndim > 2 and boxes.shape[0] == 1:
        boxes = boxes[0]
    while scores.ndim > 2 and scores.shape[0] == 1:
        scores = scores[0]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidModelOutput(
            f"The boxes tensor has shape {list(boxes.shape)}; standard_output needs N x 4 (xmin, ymin, xmax, ymax)."
        )
    if scores.ndim == 1:
        scores = scores[:, np.newaxis]
    if scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
        raise InvalidModelOutput(
            f"The scores tensor has shape {list(scores.shape)}; standard_output needs N x K with the "
            f"boxes' N = {boxes.shape[0]}."
        )
    if labels is not None and len(labels) != scores.shape[1]:
        raise InvalidModelOutput(
            f"The scores tensor has {scores.shape[1]} classes but the postprocessing lists {len(labels)} labels."
        )
    usable = np.isfinite(boxes).all(axis=1)
    scores = np.where(usable[:, np.newaxis] & np.isfinite(scores), scores, -np.inf)
    return np.nan_to_num(boxes), scores


def _non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Greedy NMS: indices into ``boxes`` by descending score, at most ``limit`` of them."""
    order = np.argsort(-scores, kind="stable")
    x1, y1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
    x2, y2 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
    areas = (x2 - x1) * (y2 - y1)
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        overlap_width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        overlap_height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        intersection = overlap_width * overlap_height
        union = areas[best] + areas[rest] - intersection
        iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
        order = rest[iou <= iou_threshold]
    return kept


def classify(scores: np.ndarray, labels: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` labels by score (ties: lower class index first)."""
    values = np.asarray(scores, dtype=np.float64)
    while values.ndim > 1 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1:
        raise InvalidModelOutput(
            f"The scores tensor has shape {list(np.shape(scores))}; labels apply to one score per class."
        )
    if len(labels) != values.shape[0]:
        raise InvalidModelOutput(
            f"The scores tensor has {values.shape[0]} classes but the postprocessing lists {len(labels)} labels."
        )
    ranked = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:top_k]
    return [{"label": labels[index], "score": round(float(values[index]), SCORE_DECIMALS)} for index in ranked]


def postprocess(
    outputs: Mapping[str, np.ndarray],
    postprocessings: Sequence[PostprocessingSpec],
    transform: ImageTransform | None,
    *,
    output_tensors: Sequence[str] | None = None,
    detection_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One sample's result: ``{"tensors": [...]}`` plus ``"outputs"`` when a postprocessing yields them.

    ``transform`` is the first image input's; detection boxes map back to that image.
    """
    result: dict[str, Any] = {"tensors": tensor_results(outputs, requested_tensors(postprocessings, output_tensors))}
    produced: list[dict[str, Any]] = []
    labelled = False
    for post in postprocessings:
        if post.standard_output is not None:
            standard = post.standard_output
            if transform is None:
                raise InvalidModelOutput("standard_output needs an image input to map boxes back to.")
            settings = detection_settings(standard, detection_overrides)
            produced.extend(
                detect(
                    _output(outputs, standard.boxes_tensor),
                    _output(outputs, standard.scores_tensor),
                    transform,
                    settings,
                    standard.labels,
                )
            )
            labelled = True
        elif post.tensors_output is not None and post.tensors_output.labels is not None:
            tensors, labels = post.tensors_output, post.tensors_output.labels
            scores = _output(outputs, tensors.scores_tensor or tensors.tensors[0])
            produced.extend(classify(scores, labels, tensors.top_k))
            labelled = True
    if labelled:
        result["outputs"] = produced
    return result


def recognize(
    outputs: Mapping[str, np.ndarray],
    labels: Sequence[Sequence[Mapping[str, Any]]],
    post_processings: Sequence[RecognitionPostProcessing],
    transform: ImageTransform | None,
    *,
    show_discarded: bool = False,
    max_predictions: int | None = None,
) -> list[dict[str, Any]]:
    """One sample's labelled predictions: ``[{"labels": {"predicted": [...], "discarded": [...]}}]``,
    one entry per spec output; ``labels[i]`` is output i's ``[{"id", "name"}]``."""
    results = []
    for output_labels, post in zip(labels, post_processings, strict=True):
        if post.classification is not None:
            scored = _classification_candidates(
                _output(outputs, post.classification.output_tensor), output_labels, post.classification.thresholds
            )
        else:
            assert post.detection is not None
            if transform is None:
                raise InvalidModelOutput("A detection needs an image input to map boxes back to.")
            scored = _detection_candidates(outputs, output_labels, post.detection, transform, show_discarded)
        # The network's own scores against the thresholds: the answer's are rounded, and a score just above
        # its threshold may round under it.
        predicted = [item for score, item in scored if score >= item["threshold"]]
        discarded = [item for score, item in scored if score < item["threshold"]] if show_discarded else []
        if max_predictions is not None:
            predicted = predicted[:max_predictions]
            discarded = discarded[: max(0, max_predictions - len(predicted))]
        region = 0
        for item in predicted + discarded:
            if "roi" in item:
                region += 1
                item["roi"]["region_id"] = region
        results.append({"labels": {"predicted": predicted, "discarded": discarded}})
    return results


def _labelled(label: Mapping[str, Any], score: float, threshold: float) -> dict[str, Any]:
    return {
        "label_id": label["id"],
        "label_name": label["name"],
        "score": round(score, SCORE_DECIMALS),
        "threshold": threshold,
    }


def _classification_candidates(
    scores: np.ndarray, labels: Sequence[Mapping[str, Any]], thresholds: Sequence[float]
) -> list[tuple[float, dict[str, Any]]]:
    values = np.asarray(scores, dtype=np.float64)
    while values.ndim > 1 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1 or values.shape[0] != len(labels):
        raise InvalidModelOutput(
            f"The classification tensor has shape {list(np.shape(scores))}; the spec output has {len(labels)} "
            "labels, so it needs one score per label."
        )
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    return [
        (float(values[index]), _labelled(labels[index], float(values[index]), thresholds[index]))
        for index in order
        if np.isfinite(values[index])
    ]


def shared_tensors(post_processings: Sequence[RecognitionPostProcessing]) -> set[str]:
    """Tensors that are the same for every image of a batch (anchors): the decoders take them whole."""
    return {
        post.detection.anchored_output.anchors_tensor
        for post in post_processings
        if post.detection is not None and post.detection.anchored_output is not None
    }


def decode_detection(
    outputs: Mapping[str, np.ndarray], detection: DetectionPostProcessing, transform: ImageTransform, label_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """A detection's decoder output: N×4 boxes as normalised ``xmin, ymin, xmax, ymax`` of the network input
    and N×K scores, K the spec output's labels; boxes that are not finite score ``-inf``."""
    names = [str(index) for index in range(label_count)]
    if detection.anchored_output is not None:
        boxes, scores = _decode_anchored(outputs, detection.anchored_output, label_count)
    elif detection.yolo_output is not None:
        boxes, scores = _decode_yolo(outputs, detection.yolo_output, transform, label_count)
    else:
        assert detection.direct_output is not None
        boxes = _output(outputs, detection.direct_output.boxes_tensor)
        scores = _output(outputs, detection.direct_output.scores_tensor)
    return _detection_arrays(boxes, scores, names)


def _rows(array: np.ndarray, width: int, what: str) -> np.ndarray:
    """An N×width matrix from a tensor with leading dimensions of 1 (the batch)."""
    values = np.asarray(array, dtype=np.float64)
    while values.ndim > 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2 or values.shape[1] != width:
        raise InvalidModelOutput(f"The {what} tensor has shape {list(np.shape(array))}; it needs N x {width}.")
    return values


def _decode_anchored(
    outputs: Mapping[str, np.ndarray], anchored: AnchoredOutput, label_count: int
) -> tuple[np.ndarray, np.ndarray]:
    deltas = _rows(_output(outputs, anchored.deltas_tensor), 4, "box deltas")
    anchors = np.asarray(_output(outputs, anchored.anchors_tensor), dtype=np.float64)
    while anchors.ndim > 2:  # anchors tiled over the batch are the same for every image
        anchors = anchors[0]
    anchors = _rows(anchors, 4, "anchors")
    if anchors.shape[0] != deltas.shape[0]:
        raise InvalidModelOutput(
            f"The network outputs {deltas.shape[0]} box deltas but {anchors.shape[0]} anchors; they go in pairs."
        )
    if anchored.coordinate_order == "yx":
        deltas, anchors = deltas[:, [1, 0, 3, 2]], anchors[:, [1, 0, 3, 2]]
    if anchored.anchor_format == "corners":
        centre = (anchors[:, :2] + anchors[:, 2:]) / 2
        size = anchors[:, 2:] - anchors[:, :2]
    else:
        centre, size = anchors[:, :2], anchors[:, 2:]
    variances = np.asarray(anchored.variances, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        box_centre = centre + deltas[:, :2] * variances[:2] * size
        box_size = size * np.exp(deltas[:, 2:] * variances[2:])
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1)

    scores = np.asarray(_output(outputs, anchored.scores_tensor), dtype=np.float64)
    while scores.ndim > 2 and scores.shape[0] == 1:
        scores = scores[0]
    expected = label_count + int(anchored.background_class)
    if scores.ndim != 2 or scores.shape != (deltas.shape[0], expected):
        background = " plus the background column" if anchored.background_class else ""
        raise InvalidModelOutput(
            f"The scores tensor has shape {list(np.shape(_output(outputs, anchored.scores_tensor)))}; it needs "
            f"{deltas.shape[0]} x {expected}: one row per anchor, one column per label{background}."
        )
    scores = _activate(scores, anchored.score_activation)
    return boxes, scores[:, 1:] if anchored.background_class else scores


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-scores))
    if activation == "softmax":
        shifted = np.exp(scores - np.max(scores, axis=1, keepdims=True))
        return shifted / np.sum(shifted, axis=1, keepdims=True)
    return scores


def _decode_yolo(
    outputs: Mapping[str, np.ndarray], yolo: YoloOutput, transform: ImageTransform, label_count: int
) -> tuple[np.ndarray, np.ndarray]:
    head = np.asarray(_output(outputs, yolo.output_tensor), dtype=np.float64)
    while head.ndim > 2 and head.shape[0] == 1:
        head = head[0]
    if yolo.layout == "end2end":
        boxes, scores = _end2end_detections(head, list(np.shape(_output(outputs, yolo.output_tensor))), label_count)
        return _input_normalized(boxes, yolo, transform), scores
    width = label_count + (5 if yolo.layout == "v5" else 4)
    # v5 exports rows of attributes, v8 columns; either is read the other way round when only that fits.
    preferred_rows = yolo.layout == "v5"
    if head.ndim == 2 and head.shape[1 if preferred_rows else 0] == width:
        rows = head if preferred_rows else head.T
    elif head.ndim == 2 and head.shape[0 if preferred_rows else 1] == width:
        rows = head.T if preferred_rows else head
    else:
        layout = f"N x {width}" if preferred_rows else f"{width} x N"
        raise InvalidModelOutput(
            f"The YOLO head has shape {list(np.shape(_output(outputs, yolo.output_tensor)))}; a {yolo.layout} head "
            f"with {label_count} labels is {layout} (cx, cy, w, h, "
            f"{'objectness, ' if yolo.layout == 'v5' else ''}{label_count} class scores)."
        )
    centre, size = rows[:, 0:2], rows[:, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    scores = rows[:, 5:] * rows[:, 4:5] if yolo.layout == "v5" else rows[:, 4:]
    return _input_normalized(boxes, yolo, transform), scores


def _input_normalized(boxes: np.ndarray, yolo: YoloOutput, transform: ImageTransform) -> np.ndarray:
    if yolo.normalized:
        return boxes
    input_width, input_height = transform.input_size
    return boxes / np.array([input_width, input_height, input_width, input_height], dtype=np.float64)


def _end2end_detections(head: np.ndarray, shape: list[int], label_count: int) -> tuple[np.ndarray, np.ndarray]:
    """An NMS-free export's final detections, N×6 rows of x1, y1, x2, y2, score, class id, as corner boxes
    and N×K scores holding each row's score in its class's column alone (``-inf`` elsewhere).

    Rows scoring 0 or less are padding and score nothing whatever their class id. Any other row's class id
    must be one of the spec output's labels: one beyond them means the network has more classes than the
    spec has labels, which dropping the row would hide."""
    if head.ndim != 2 or head.shape[1] != 6:
        raise InvalidModelOutput(
            f"The YOLO head has shape {shape}; an end2end head is N x 6 (x1, y1, x2, y2, score, class id), "
            "as NMS-free exports write it ([batch, 300, 6])."
        )
    scores = np.full((head.shape[0], label_count), -np.inf)
    detections = np.flatnonzero(np.nan_to_num(head[:, 4], nan=0.0) > 0)
    classes = head[detections, 5]
    with np.errstate(invalid="ignore"):
        known = (classes == np.round(classes)) & (classes >= 0) & (classes < label_count)  # NaN: never
    wrong = np.flatnonzero(~known)
    if wrong.size:
        row = int(detections[wrong[0]])
        raise InvalidModelOutput(
            f"Row {row} of the end2end YOLO head has class id {head[row, 5]:g} with score {head[row, 4]:g}; the "
            f"spec output has {label_count} labels, so a class id is a whole number from 0 to {label_count - 1}."
        )
    scores[detections, classes.astype(np.int64)] = head[detections, 4]
    return head[:, :4], scores


def _suppressed_by_the_network(detection: DetectionPostProcessing) -> bool:
    """An end2end head holds final detections: its network already chose one box per object, and running
    NMS again would drop overlapping objects it kept on purpose (a crowd of one label)."""
    return detection.yolo_output is not None and detection.yolo_output.layout == "end2end"


def _detection_candidates(
    outputs: Mapping[str, np.ndarray],
    labels: Sequence[Mapping[str, Any]],
    detection: DetectionPostProcessing,
    transform: ImageTransform,
    show_discarded: bool,
) -> list[tuple[float, dict[str, Any]]]:
    """Boxes under their threshold only enter NMS when they may be shown: greedy NMS never lets a lower
    score suppress a higher one, so the predicted boxes are the same either way."""
    boxes, scores = decode_detection(outputs, detection, transform, len(labels))
    region = transform.visible_region()
    suppressed = _suppressed_by_the_network(detection)
    candidates: list[tuple[float, int, int, tuple[float, float, float, float]]] = []
    for label_index in range(scores.shape[1]):
        class_scores = scores[:, label_index]
        floor = -np.inf if show_discarded else detection.thresholds[label_index]
        usable = np.flatnonzero(np.isfinite(class_scores) & (class_scores >= floor))
        # The best boxes only: NMS is quadratic, and more than this many regions of one label is noise.
        usable = usable[np.argsort(-class_scores[usable], kind="stable")[:MAX_REGIONS_PER_LABEL]]
        if usable.size == 0:
            continue
        if suppressed:
            kept = list(range(usable.size))
        else:
            kept = _non_maximum_suppression(boxes[usable], class_scores[usable], detection.nms_threshold, usable.size)
        for k in kept:
            row = int(usable[k])
            x1, y1, x2, y2 = transform.normalized_to_original(boxes[row].tolist())
            x1, x2 = sorted((min(max(x1, region[0]), region[2]), min(max(x2, region[0]), region[2])))
            y1, y2 = sorted((min(max(y1, region[1]), region[3]), min(max(y2, region[1]), region[3])))
            if x2 <= x1 or y2 <= y1:
                continue  # entirely in FILL padding or outside the picture
            candidates.append((float(class_scores[row]), label_index, row, (x1, y1, x2, y2)))
    candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
    found = []
    for score, label_index, _, (x1, y1, x2, y2) in candidates:
        item = _labelled(labels[label_index], score, detection.thresholds[label_index])
        bbox = dict(
            zip(("xmin", "ymin", "xmax", "ymax"), (round(v, BOX_DECIMALS) for v in (x1, y1, x2, y2)), strict=True)
        )
        item["roi"] = {"region_id": 0, "bbox": bbox}
        found.append((score, item))
    return found
