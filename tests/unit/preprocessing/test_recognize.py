"""Recognition versions' decoding (DESIGN §7) against plain Python references and hand-computed cases."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tensorgate_preprocessing.errors import InvalidModelOutput
from tensorgate_preprocessing.geometry import ImageTransform, plan_resize
from tensorgate_preprocessing.postprocess import recognize
from tensorgate_preprocessing.spec import RecognitionPostProcessing, ResizeType, TargetSize

# A 1000×500 photo squashed to a 100×100 input: a normalised x is 1000 px, a normalised y 500 px.
SQUASHED = ImageTransform((1000, 500), (0, 0, 1000, 500), (100, 100), (0, 0), (100, 100))
PETS = [{"id": 10, "name": "cat"}, {"id": 20, "name": "dog"}, {"id": 30, "name": "bird"}]


def classification(thresholds: list[float]) -> RecognitionPostProcessing:
    return RecognitionPostProcessing.model_validate(
        {"classification": {"output_tensor": "prob", "thresholds": thresholds}}
    )


def detection(thresholds: list[float], nms: float = 0.5) -> RecognitionPostProcessing:
    return RecognitionPostProcessing.model_validate(
        {
            "detection": {
                "direct_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"},
                "thresholds": thresholds,
                "nms_threshold": nms,
            }
        }
    )


def test_classification_by_hand_predicted_best_first_and_discarded_on_request() -> None:
    outputs = {"prob": np.array([[0.2, 0.7, 0.1]], dtype=np.float32)}
    (result,) = recognize(outputs, [PETS], [classification([0.15, 0.5, 0.5])], None, show_discarded=True)
    predicted, discarded = result["labels"]["predicted"], result["labels"]["discarded"]
    assert [(p["label_name"], p["label_id"], p["threshold"]) for p in predicted] == [
        ("dog", 20, 0.5),
        ("cat", 10, 0.15),
    ]
    assert predicted[0]["score"] == pytest.approx(0.7)
    assert [d["label_name"] for d in discarded] == ["bird"]
    (hidden,) = recognize(outputs, [PETS], [classification([0.15, 0.5, 0.5])], None)
    assert hidden["labels"]["discarded"] == []


def test_max_predictions_caps_predicted_first_then_discarded() -> None:
    outputs = {"prob": np.array([[0.2, 0.7, 0.1]])}
    post = [classification([0.15, 0.5, 0.5])]
    (one,) = recognize(outputs, [PETS], post, None, show_discarded=True, max_predictions=1)
    assert [p["label_name"] for p in one["labels"]["predicted"]] == ["dog"] and one["labels"]["discarded"] == []
    (three,) = recognize(outputs, [PETS], post, None, show_discarded=True, max_predictions=3)
    assert len(three["labels"]["predicted"]) == 2 and len(three["labels"]["discarded"]) == 1


def test_classification_with_a_score_count_unlike_the_labels_is_a_sentence() -> None:
    with pytest.raises(InvalidModelOutput, match="one score per label"):
        recognize({"prob": np.zeros((1, 4))}, [PETS], [classification([0.5] * 3)], None)


def test_scores_are_held_against_their_threshold_before_the_answer_rounds_them() -> None:
    # 0.30000004 rounds to 0.3 and 0.29999996 to 0.3 too: only the network's own score says which side it is.
    outputs = {"prob": np.array([[0.30000004, 0.29999996]])}
    (result,) = recognize(outputs, [PETS[:2]], [classification([0.3000000, 0.3])], None, show_discarded=True)
    assert [(p["label_name"], p["score"]) for p in result["labels"]["predicted"]] == [("cat", 0.3)]
    assert [(d["label_name"], d["score"]) for d in result["labels"]["discarded"]] == [("dog", 0.3)]
    # The same for boxes, with or without the discarded ones shown.
    head = np.zeros((1, 300, 6))
    head[0, 0] = [10.0, 10.0, 20.0, 20.0, 0.50000004, 0.0]
    head[0, 1] = [30.0, 30.0, 40.0, 40.0, 0.49999996, 1.0]
    for show in (False, True):
        (boxes,) = recognize(
            {"output0": head}, [PETS[:2]], [yolo([0.5, 0.5], "end2end")], SQUASHED, show_discarded=show
        )
        assert [(p["label_name"], p["score"]) for p in boxes["labels"]["predicted"]] == [("cat", 0.5)]
        assert [(d["label_name"], d["score"]) for d in boxes["labels"]["discarded"]] == ([("dog", 0.5)] if show else [])


def reference_classification(
    scores: list[float], thresholds: list[float], show: bool, cap: int | None
) -> tuple[list[int], list[int]]:
    """Plain Python: label indices at or above their threshold, best first (ties: lower index), then the rest."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    predicted = [i for i in order if scores[i] >= thresholds[i]]
    discarded = [i for i in order if scores[i] < thresholds[i]] if show else []
    if cap is not None:
        predicted = predicted[:cap]
        discarded = discarded[: max(0, cap - len(predicted))]
    return predicted, discarded


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    count=st.integers(min_value=1, max_value=12),
    show=st.booleans(),
    cap=st.one_of(st.none(), st.integers(min_value=1, max_value=15)),
)
def test_classification_matches_the_plain_reference(data: Any, count: int, show: bool, cap: int | None) -> None:
    unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    scores = data.draw(st.lists(unit.map(lambda v: round(v, 3)), min_size=count, max_size=count))
    thresholds = data.draw(st.lists(unit.map(lambda v: round(v, 2)), min_size=count, max_size=count))
    labels = [{"id": 100 + i, "name": f"l{i}"} for i in range(count)]
    (result,) = recognize(
        {"prob": np.array([scores])},
        [labels],
        [classification(thresholds)],
        None,
        show_discarded=show,
        max_predictions=cap,
    )
    predicted, discarded = reference_classification(scores, thresholds, show, cap)
    assert [p["label_id"] - 100 for p in result["labels"]["predicted"]] == predicted
    assert [d["label_id"] - 100 for d in result["labels"]["discarded"]] == discarded


def test_detection_by_hand_boxes_in_original_pixels_per_label_nms_and_region_ids() -> None:
    boxes = np.array(
        [
            [0.10, 0.10, 0.50, 0.50],  # a cat, best
            [0.12, 0.10, 0.52, 0.50],  # the same cat again (IoU ~0.9): suppressed
            [0.60, 0.60, 0.90, 0.90],  # a dog
            [0.60, 0.62, 0.90, 0.92],  # a weak second dog box, under the threshold
        ]
    )
    scores = np.array([[0.9, 0.05], [0.8, 0.05], [0.1, 0.7], [0.1, 0.3]])
    labels = PETS[:2]
    (result,) = recognize(
        {"boxes": boxes[None], "scores": scores[None]}, [labels], [detection([0.5, 0.5])], SQUASHED, show_discarded=True
    )
    predicted = result["labels"]["predicted"]
    assert [(p["label_name"], p["roi"]["region_id"]) for p in predicted] == [("cat", 1), ("dog", 2)]
    assert predicted[0]["roi"]["bbox"] == {"xmin": 100.0, "ymin": 50.0, "xmax": 500.0, "ymax": 250.0}
    assert predicted[1]["roi"]["bbox"] == {"xmin": 600.0, "ymin": 300.0, "xmax": 900.0, "ymax": 450.0}
    # Discarded: per label, what NMS kept under the threshold (the weak dog box overlaps the strong one: gone).
    discarded = [(d["label_name"], d["score"]) for d in result["labels"]["discarded"]]
    assert ("dog", pytest.approx(0.3)) not in discarded
    assert [d["roi"]["region_id"] for d in result["labels"]["discarded"]] == list(range(3, 3 + len(discarded)))


def iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_detection(
    boxes: list[list[float]], scores: list[list[float]], thresholds: list[float], nms: float
) -> list[tuple[int, int]]:
    """Plain Python: per label, boxes at or above the threshold, greedy NMS by score; (label, row) best first."""
    found = []
    for label in range(len(thresholds)):
        rows = sorted(
            (r for r in range(len(boxes)) if scores[r][label] >= thresholds[label]),
            key=lambda r: (-scores[r][label], r),
        )
        kept: list[int] = []
        for row in rows:
            if all(iou(boxes[row], boxes[k]) <= nms for k in kept):
                kept.append(row)
        found += [(label, row) for row in kept]
    return sorted(found, key=lambda item: (-scores[item[1]][item[0]], item[0], item[1]))


def as_the_reference(
    result: dict[str, Any], boxes: list[list[float]], scores: list[list[float]], thresholds: list[float], nms: float
) -> list[dict[str, Any]]:
    """Asserts the predictions are the reference's, best first, boxes within a pixel of SQUASHED's mapping."""
    expected = reference_detection(boxes, scores, thresholds, nms)
    predicted = result["labels"]["predicted"]
    assert [(p["label_id"], p["score"]) for p in predicted] == [
        (label, round(scores[row][label], 6)) for label, row in expected
    ]
    for item, (_, row) in zip(predicted, expected, strict=True):
        x1, y1, x2, y2 = boxes[row]
        bbox = item["roi"]["bbox"]
        assert abs(bbox["xmin"] - x1 * 1000) <= 1 and abs(bbox["xmax"] - x2 * 1000) <= 1
        assert abs(bbox["ymin"] - y1 * 500) <= 1 and abs(bbox["ymax"] - y2 * 500) <= 1
    return list(predicted)


# A box from its corner and its size, so every drawn box is valid (no filtering).
box = st.builds(
    lambda x, y, w, h: (x, y, x + w, y + h),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(1, 5),
    st.integers(1, 5),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=10),
    classes=st.integers(min_value=1, max_value=3),
    nms=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_detection_matches_the_plain_reference_and_boxes_map_back_within_a_pixel(
    data: Any, rows: int, classes: int, nms: float
) -> None:
    grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    boxes = [[value / 20 for value in b] for b in grid]
    # Distinct scores: ties would make the order depend on tie-breaking alone.
    flat = data.draw(st.lists(st.integers(0, 10_000), min_size=rows * classes, max_size=rows * classes, unique=True))
    scores = [[flat[r * classes + c] / 10_000 for c in range(classes)] for r in range(rows)]
    thresholds = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=classes, max_size=classes))
    labels = [{"id": c, "name": f"c{c}"} for c in range(classes)]
    (result,) = recognize(
        {"boxes": np.array([boxes]), "scores": np.array([scores])}, [labels], [detection(thresholds, nms)], SQUASHED
    )
    predicted = as_the_reference(result, boxes, scores, thresholds, nms)
    assert [p["roi"]["region_id"] for p in predicted] == list(range(1, len(predicted) + 1))


# -- anchored_output (SSD-style) and yolo_output decoders


def anchored(thresholds: list[float], nms: float = 0.5, **decoder: Any) -> RecognitionPostProcessing:
    tensors = {"deltas_tensor": "deltas", "scores_tensor": "scores", "anchors_tensor": "anchors"}
    return RecognitionPostProcessing.model_validate(
        {"detection": {"anchored_output": tensors | decoder, "thresholds": thresholds, "nms_threshold": nms}}
    )


def yolo(thresholds: list[float], layout: str, nms: float = 0.5, **decoder: Any) -> RecognitionPostProcessing:
    head = {"output_tensor": "output0", "layout": layout}
    return RecognitionPostProcessing.model_validate(
        {"detection": {"yolo_output": head | decoder, "thresholds": thresholds, "nms_threshold": nms}}
    )


def bboxes(result: dict[str, Any]) -> list[tuple[str, list[float]]]:
    return [
        (p["label_name"], [p["roi"]["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")])
        for p in result["labels"]["predicted"]
    ]


def test_anchored_output_by_hand_deltas_move_and_scale_their_anchor() -> None:
    # Two anchors as (cx, cy, w, h): a 0.2 square at (0.3, 0.3) and a 0.4 square at (0.7, 0.7).
    anchors = np.array([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.4, 0.4]])
    # Anchor 0 moves right by one variance step (0.1 × 0.2 = 0.02) and keeps its size; anchor 1 doubles its
    # width (exp(ln 2 / 0.2 × 0.2)) and keeps its height.
    deltas = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, np.log(2) / 0.2, 0.0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    outputs = {"deltas": deltas[None], "scores": scores[None], "anchors": anchors}
    (result,) = recognize(outputs, [PETS[:2]], [anchored([0.5, 0.5])], SQUASHED)
    # Normalised (0.22, 0.2, 0.42, 0.4) and (0.3, 0.5, 1.1, 0.9), the second clipped to the picture.
    assert bboxes(result) == [("cat", [220.0, 100.0, 420.0, 200.0]), ("dog", [300.0, 250.0, 1000.0, 450.0])]


def test_anchored_output_tensorflow_layout_yx_corners_with_background_and_softmax() -> None:
    # The TensorFlow Object Detection API's layout: anchors (ymin, xmin, ymax, xmax), deltas (dy, dx, dh, dw),
    # logits with a background column first.
    anchors = np.array([[0.2, 0.2, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]])  # square anchors: yx reads the same
    deltas = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # anchor 0 moves right by 0.02
    logits = np.array([[0.0, np.log(8.0), 0.0], [np.log(8.0), 0.0, 0.0]])  # softmax: (0.1, 0.8, 0.1), (0.8, ...)
    outputs = {"deltas": deltas[None], "scores": logits[None], "anchors": anchors[None]}
    post = anchored(
        [0.5, 0.5],
        anchor_format="corners",
        coordinate_order="yx",
        score_activation="softmax",
        background_class=True,
    )
    (result,) = recognize(outputs, [PETS[:2]], [post], SQUASHED, show_discarded=True)
    assert bboxes(result) == [("cat", [220.0, 100.0, 420.0, 200.0])]
    assert result["labels"]["predicted"][0]["score"] == pytest.approx(0.8)
    # The background-heavy anchor 1 is a discarded cat and a discarded dog, 0.1 each.
    assert sorted(d["score"] for d in result["labels"]["discarded"]) == pytest.approx([0.1, 0.1, 0.1])


def test_anchored_output_sigmoid_scores_and_a_shape_mismatch_is_a_sentence() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.2]])
    outputs = {"deltas": np.zeros((1, 1, 4)), "scores": np.array([[[-4.0, 4.0]]]), "anchors": anchors}
    (result,) = recognize(outputs, [PETS[:2]], [anchored([0.5, 0.5], score_activation="sigmoid")], SQUASHED)
    assert [(p["label_name"], p["score"]) for p in result["labels"]["predicted"]] == [
        ("dog", pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-6))
    ]
    with pytest.raises(InvalidModelOutput, match="1 box deltas but 2 anchors"):
        recognize(outputs | {"anchors": np.zeros((2, 4))}, [PETS[:2]], [anchored([0.5, 0.5])], SQUASHED)
    with pytest.raises(InvalidModelOutput, match="plus the background column"):
        recognize(outputs, [PETS[:2]], [anchored([0.5, 0.5], background_class=True)], SQUASHED)


def clear_of_the_nms_threshold(boxes: list[list[float]], nms: float) -> bool:
    """No two boxes overlap by the NMS threshold itself: decoded boxes carry rounding errors, and on such a tie
    whether NMS keeps the box depends on the last bit."""
    return all(abs(iou(a, b) - nms) > 1e-9 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def encode(box: list[float], anchor: list[float], variances: list[float]) -> list[float]:
    """Plain Python SSD encoding of a corner box against a (cx, cy, w, h) anchor: the decoder's inverse."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return [
        (cx - anchor[0]) / (variances[0] * anchor[2]),
        (cy - anchor[1]) / (variances[1] * anchor[3]),
        float(np.log(w / anchor[2]) / variances[2]),
        float(np.log(h / anchor[3]) / variances[3]),
    ]


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=10),
    classes=st.integers(min_value=1, max_value=3),
    nms=st.sampled_from([0.3, 0.5, 0.7]),
    variances=st.sampled_from([[0.1, 0.1, 0.2, 0.2], [1.0, 1.0, 1.0, 1.0], [0.125, 0.2, 0.25, 0.5]]),
)
def test_anchored_output_matches_the_plain_reference_and_maps_back_within_a_pixel(
    data: Any, rows: int, classes: int, nms: float, variances: list[float]
) -> None:
    grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    boxes = [[value / 20 for value in b] for b in grid]
    assume(clear_of_the_nms_threshold(boxes, nms))
    anchor_grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    anchors = [[(a[0] + a[2]) / 40, (a[1] + a[3]) / 40, (a[2] - a[0]) / 20, (a[3] - a[1]) / 20] for a in anchor_grid]
    deltas = [encode(b, a, variances) for b, a in zip(boxes, anchors, strict=True)]
    flat = data.draw(st.lists(st.integers(0, 10_000), min_size=rows * classes, max_size=rows * classes, unique=True))
    scores = [[flat[r * classes + c] / 10_000 for c in range(classes)] for r in range(rows)]
    thresholds = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=classes, max_size=classes))
    labels = [{"id": c, "name": f"c{c}"} for c in range(classes)]
    outputs = {"deltas": np.array([deltas]), "scores": np.array([scores]), "anchors": np.array(anchors)}
    (result,) = recognize(outputs, [labels], [anchored(thresholds, nms, variances=variances)], SQUASHED)
    as_the_reference(result, boxes, scores, thresholds, nms)


def test_yolo_v5_and_v8_heads_by_hand_boxes_from_input_pixels() -> None:
    # On the 100×100 input: a box centred at (50, 50), 20 wide and 40 high, is normalised
    # (0.4, 0.3, 0.6, 0.7), so (400, 150, 600, 350) in the 1000×500 photo.
    v5 = np.array([[50.0, 50.0, 20.0, 40.0, 0.9, 0.2, 0.8], [20.0, 20.0, 10.0, 10.0, 0.1, 0.9, 0.1]])
    (result,) = recognize({"output0": v5[None]}, [PETS[:2]], [yolo([0.5, 0.5], "v5")], SQUASHED, show_discarded=True)
    assert bboxes(result) == [("dog", [400.0, 150.0, 600.0, 350.0])]
    assert result["labels"]["predicted"][0]["score"] == pytest.approx(0.72)  # objectness × class score
    assert max(d["score"] for d in result["labels"]["discarded"]) == pytest.approx(0.18)
    v8 = np.array([[50.0, 20.0], [50.0, 20.0], [20.0, 10.0], [40.0, 10.0], [0.2, 0.9], [0.8, 0.1]])  # (4+K)×N
    (result,) = recognize({"output0": v8[None]}, [PETS[:2]], [yolo([0.5, 0.5], "v8")], SQUASHED)
    assert bboxes(result) == [("cat", [150.0, 75.0, 250.0, 125.0]), ("dog", [400.0, 150.0, 600.0, 350.0])]
    # A v8 head written N×(4+K) is read all the same; normalised boxes skip the pixel scale.
    (same,) = recognize({"output0": v8.T[None]}, [PETS[:2]], [yolo([0.5, 0.5], "v8")], SQUASHED)
    assert bboxes(same) == bboxes(result)
    halved = v8.copy()
    halved[:4] /= 100
    (normalised,) = recognize({"output0": halved}, [PETS[:2]], [yolo([0.5, 0.5], "v8", normalized=True)], SQUASHED)
    assert bboxes(normalised) == bboxes(result)


def test_yolo_head_of_the_wrong_width_is_a_sentence_naming_the_layout() -> None:
    with pytest.raises(InvalidModelOutput, match=r"a v5 head with 3 labels is N x 8"):
        recognize({"output0": np.zeros((1, 10, 7))}, [PETS], [yolo([0.5] * 3, "v5")], SQUASHED)
    with pytest.raises(InvalidModelOutput, match=r"a v8 head with 3 labels is 7 x N"):
        recognize({"output0": np.zeros((1, 6, 10))}, [PETS], [yolo([0.5] * 3, "v8")], SQUASHED)


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=10),
    classes=st.integers(min_value=1, max_value=3),
    nms=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_yolo_v8_matches_the_plain_reference_and_maps_back_within_a_pixel(
    data: Any, rows: int, classes: int, nms: float
) -> None:
    grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    boxes = [[value / 20 for value in b] for b in grid]
    flat = data.draw(st.lists(st.integers(0, 10_000), min_size=rows * classes, max_size=rows * classes, unique=True))
    scores = [[flat[r * classes + c] / 10_000 for c in range(classes)] for r in range(rows)]
    thresholds = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=classes, max_size=classes))
    labels = [{"id": c, "name": f"c{c}"} for c in range(classes)]
    assume(clear_of_the_nms_threshold(boxes, nms))
    # Centre and size in the 100×100 input's pixels, attributes down the columns as v8 exports them.
    head = [
        [(b[0] + b[2]) * 50, (b[1] + b[3]) * 50, (b[2] - b[0]) * 100, (b[3] - b[1]) * 100, *s]
        for b, s in zip(boxes, scores, strict=True)
    ]
    (result,) = recognize({"output0": np.array(head).T[None]}, [labels], [yolo(thresholds, "v8", nms)], SQUASHED)
    as_the_reference(result, boxes, scores, thresholds, nms)


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=10),
    classes=st.integers(min_value=1, max_value=3),
    nms=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_yolo_v5_scores_objectness_times_class_and_matches_the_plain_reference(
    data: Any, rows: int, classes: int, nms: float
) -> None:
    grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    boxes = [[value / 20 for value in b] for b in grid]
    assume(clear_of_the_nms_threshold(boxes, nms))
    objectness = [value / 100 for value in data.draw(st.lists(st.integers(1, 100), min_size=rows, max_size=rows))]
    flat = data.draw(st.lists(st.integers(0, 10_000), min_size=rows * classes, max_size=rows * classes, unique=True))
    class_scores = [[flat[r * classes + c] / 10_000 for c in range(classes)] for r in range(rows)]
    scores = [[objectness[r] * class_scores[r][c] for c in range(classes)] for r in range(rows)]
    assume(len({score for row in scores for score in row}) == rows * classes)  # ties: tie-breaking alone
    thresholds = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=classes, max_size=classes))
    labels = [{"id": c, "name": f"c{c}"} for c in range(classes)]
    # Rows of centre and size in the 100×100 input's pixels, objectness, then the class scores, as v5 exports.
    head = [
        [(b[0] + b[2]) * 50, (b[1] + b[3]) * 50, (b[2] - b[0]) * 100, (b[3] - b[1]) * 100, objectness[r], *s]
        for r, (b, s) in enumerate(zip(boxes, class_scores, strict=True))
    ]
    (result,) = recognize({"output0": np.array(head)[None]}, [labels], [yolo(thresholds, "v5", nms)], SQUASHED)
    as_the_reference(result, boxes, scores, thresholds, nms)


@st.composite
def letterboxes(draw: Any) -> ImageTransform:
    """A whole picture letterboxed (FILL) into a network input: resized to fit, padded right and below."""
    width, height = draw(st.integers(1, 2000)), draw(st.integers(1, 2000))
    target = TargetSize(width=draw(st.integers(16, 640)), height=draw(st.integers(16, 640)))
    plan = plan_resize((width, height), ResizeType.FILL, target)
    return ImageTransform((width, height), (0, 0, width, height), plan.resized, plan.offset, plan.input_size)


@settings(max_examples=200, deadline=None)
@given(transform=letterboxes(), data=st.data())
def test_yolo_boxes_under_a_letterbox_are_unscaled_cut_to_the_picture_and_dropped_in_the_padding(
    transform: ImageTransform, data: Any
) -> None:
    # Given v8 boxes anywhere in the input, padding included, on half pixels (never exactly on its edge)
    input_width, input_height = transform.input_size
    rows = data.draw(st.integers(min_value=1, max_value=8))
    corners = [
        sorted(data.draw(st.lists(st.integers(0, size - 1), min_size=2, max_size=2, unique=True)))
        for _ in range(rows)
        for size in (input_width, input_height)
    ]
    boxes = [(x[0] + 0.5, y[0] + 0.5, x[1] + 0.5, y[1] + 0.5) for x, y in zip(corners[::2], corners[1::2], strict=True)]
    scores = [(rows - r) / (rows + 1) + 0.01 for r in range(rows)]  # distinct, best first, all over 0
    head = [
        [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1], score]
        for b, score in zip(boxes, scores, strict=True)
    ]

    # When they are read with no threshold and no suppression
    post = yolo([0.0], "v8", nms=1.0)
    (result,) = recognize({"output0": np.array(head).T[None]}, [PETS[:1]], [post], transform)

    # Then each is its input box divided by the resize's scale, cut to the picture; those in the padding are gone
    scale_x, scale_y = transform.scale
    width, height = transform.original_size
    expected = []
    for (x1, y1, x2, y2), score in zip(boxes, scores, strict=True):
        cut = (min(x1 / scale_x, width), min(y1 / scale_y, height), min(x2 / scale_x, width), min(y2 / scale_y, height))
        if cut[2] > cut[0] and cut[3] > cut[1]:
            expected.append((round(score, 6), cut))
    predicted = result["labels"]["predicted"]
    assert [p["score"] for p in predicted] == [score for score, _ in expected]
    for item, (_, cut) in zip(predicted, expected, strict=True):
        found = [item["roi"]["bbox"][key] for key in ("xmin", "ymin", "xmax", "ymax")]
        assert max(abs(a - b) for a, b in zip(found, cut, strict=True)) <= 0.006, (found, cut)


# -- yolo_output end2end: an NMS-free export's final detections


def test_yolo_end2end_by_hand_squashed_padding_rows_score_nothing_and_no_suppression() -> None:
    # Rows x1, y1, x2, y2 in the 100×100 input's pixels, score, class id; the network pads with zero rows.
    head = np.zeros((300, 6))
    head[0] = [40.0, 30.0, 60.0, 70.0, 0.9, 1.0]  # a dog: (400, 150, 600, 350) in the 1000×500 photo
    head[1] = [42.0, 30.0, 62.0, 70.0, 0.8, 1.0]  # a second dog over the first (IoU 0.82): kept, no NMS
    head[2] = [10.0, 10.0, 20.0, 30.0, 0.7, 0.0]  # a cat
    head[3] = [0.0, 0.0, 50.0, 50.0, 0.3, 0.0]  # a weak cat, under its threshold
    head[4] = [40.0, 30.0, 60.0, 70.0, 0.6, 0.0]  # the first dog's box as a cat too: scored for cat alone
    (result,) = recognize(
        {"output0": head[None]}, [PETS[:2]], [yolo([0.5, 0.5], "end2end", nms=0.1)], SQUASHED, show_discarded=True
    )
    assert [(p["label_name"], p["score"]) for p in result["labels"]["predicted"]] == [
        ("dog", 0.9),
        ("dog", 0.8),
        ("cat", 0.7),
        ("cat", 0.6),
    ]
    assert bboxes(result) == [
        ("dog", [400.0, 150.0, 600.0, 350.0]),
        ("dog", [420.0, 150.0, 620.0, 350.0]),
        ("cat", [100.0, 50.0, 200.0, 150.0]),
        ("cat", [400.0, 150.0, 600.0, 350.0]),
    ]
    # The 295 zero rows are padding: not even discarded.
    assert [(d["label_name"], d["score"], d["roi"]["region_id"]) for d in result["labels"]["discarded"]] == [
        ("cat", 0.3, 5)
    ]
    # Boxes already in [0, 1] of the input with normalized.
    halved = head.copy()
    halved[:, :4] /= 100
    (normalised,) = recognize(
        {"output0": halved[None]}, [PETS[:2]], [yolo([0.5, 0.5], "end2end", normalized=True)], SQUASHED
    )
    assert bboxes(normalised) == bboxes(result)


def test_yolo_end2end_under_a_letterbox_boxes_are_unscaled_cut_and_dropped_in_the_padding() -> None:
    # A 200×100 picture letterboxed into a 64×64 input: scaled by 0.32 to 64×32, white padding below.
    plan = plan_resize((200, 100), ResizeType.FILL, TargetSize(width=64, height=64))
    transform = ImageTransform((200, 100), (0, 0, 200, 100), plan.resized, plan.offset, plan.input_size)
    head = np.zeros((1, 300, 6), dtype=np.float32)
    head[0, 0] = [16.0, 8.0, 32.0, 24.0, 0.75, 2.0]  # a bird inside the picture
    head[0, 1] = [48.0, 24.0, 64.0, 40.0, 0.5, 0.0]  # a cat across the padding's edge: cut at y = 32
    head[0, 2] = [8.0, 40.0, 24.0, 56.0, 0.625, 1.0]  # a dog in the padding alone: gone
    (result,) = recognize({"output0": head}, [PETS], [yolo([0.5] * 3, "end2end")], transform)
    assert bboxes(result) == [("bird", [50.0, 25.0, 100.0, 75.0]), ("cat", [150.0, 75.0, 200.0, 100.0])]


def test_yolo_end2end_class_id_beyond_the_labels_or_not_whole_is_a_sentence_padding_aside() -> None:
    head = np.zeros((1, 300, 6))
    head[0, 0] = [10.0, 10.0, 20.0, 20.0, 0.9, 1.0]
    head[0, 5] = [0.0, 0.0, 0.0, 0.0, 0.0, -1.0]  # padding: its class id is never read
    (result,) = recognize({"output0": head}, [PETS[:2]], [yolo([0.5, 0.5], "end2end")], SQUASHED)
    assert [p["label_name"] for p in result["labels"]["predicted"]] == ["dog"]
    # An 80-class export bound to a two-label spec: its first detection of a class beyond them stops the task.
    head[0, 7] = [30.0, 30.0, 40.0, 40.0, 0.01, 2.0]
    with pytest.raises(
        InvalidModelOutput,
        match=r"Row 7 of the end2end YOLO head has class id 2 with score 0\.01; the spec output has 2 labels, "
        r"so a class id is a whole number from 0 to 1\.",
    ):
        recognize({"output0": head}, [PETS[:2]], [yolo([0.5, 0.5], "end2end")], SQUASHED)
    for wrong in (-1.0, 0.5, np.nan):
        head[0, 7, 5] = wrong
        with pytest.raises(InvalidModelOutput, match=r"Row 7 of the end2end YOLO head has class id"):
            recognize({"output0": head}, [PETS[:2]], [yolo([0.5, 0.5], "end2end")], SQUASHED)


def test_yolo_end2end_head_of_the_wrong_shape_is_a_sentence_naming_the_layout() -> None:
    for shape in ((1, 300, 7), (1, 6, 300), (1, 2, 300, 6)):
        sentence = f"The YOLO head has shape {list(shape)}; an end2end head is N x 6 (x1, y1, x2, y2, score, class id)"
        with pytest.raises(InvalidModelOutput, match=re.escape(sentence)):
            recognize({"output0": np.zeros(shape)}, [PETS], [yolo([0.5] * 3, "end2end")], SQUASHED)


def reference_end2end(rows: list[list[float]], thresholds: list[float]) -> list[tuple[int, int]]:
    """Plain Python: every row scoring over 0 and at or above its class's threshold; (label, row) best first."""
    found = [(int(r[5]), index) for index, r in enumerate(rows) if r[4] > 0 and r[4] >= thresholds[int(r[5])]]
    return sorted(found, key=lambda item: (-rows[item[1]][4], item[0], item[1]))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=12),
    padding=st.integers(min_value=0, max_value=6),
    classes=st.integers(min_value=1, max_value=3),
    nms=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_yolo_end2end_matches_the_plain_reference_and_maps_back_within_a_pixel(
    data: Any, rows: int, padding: int, classes: int, nms: float
) -> None:
    grid = data.draw(st.lists(box, min_size=rows, max_size=rows))
    boxes = [[value / 20 for value in b] for b in grid]
    # Distinct scores over 0 (ties: tie-breaking alone), any class; then the zero rows the network pads with.
    flat = data.draw(st.lists(st.integers(1, 10_000), min_size=rows, max_size=rows, unique=True))
    ids = data.draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows))
    thresholds = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=classes, max_size=classes))
    labels = [{"id": c, "name": f"c{c}"} for c in range(classes)]
    head = [[v * 100 for v in b] + [s / 10_000, c] for b, s, c in zip(boxes, flat, ids, strict=True)]
    head += [[0.0] * 6] * padding
    (result,) = recognize({"output0": np.array([head])}, [labels], [yolo(thresholds, "end2end", nms)], SQUASHED)

    # Whatever nms_threshold says, no box suppresses another: each row is a detection of its class.
    expected = reference_end2end(head, thresholds)
    predicted = result["labels"]["predicted"]
    assert [(p["label_id"], p["score"]) for p in predicted] == [
        (label, round(head[row][4], 6)) for label, row in expected
    ]
    for item, (_, row) in zip(predicted, expected, strict=True):
        x1, y1, x2, y2 = boxes[row]
        bbox = item["roi"]["bbox"]
        assert abs(bbox["xmin"] - x1 * 1000) <= 1 and abs(bbox["xmax"] - x2 * 1000) <= 1
        assert abs(bbox["ymin"] - y1 * 500) <= 1 and abs(bbox["ymax"] - y2 * 500) <= 1
    assert [p["roi"]["region_id"] for p in predicted] == list(range(1, len(predicted) + 1))


def test_a_detection_takes_exactly_one_decoder() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one of direct_output, anchored_output or yolo_output"):
        RecognitionPostProcessing.model_validate(
            {
                "detection": {
                    "direct_output": {"boxes_tensor": "b", "scores_tensor": "s"},
                    "yolo_output": {"output_tensor": "o", "layout": "v8"},
                    "thresholds": [0.5],
                }
            }
        )
