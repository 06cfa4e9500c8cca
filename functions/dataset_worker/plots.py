"""Evaluation plots as PNG images drawn by matplotlib (Agg backend, no display): a confusion matrix, PR curves."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

MAX_LABELLED_CLASSES = 40


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # A Figure without pyplot: no global state, safe in a long-lived worker.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = "Confusion matrix"
) -> bytes:
    """Rows are true classes, columns predicted ones; each cell's count written on it while the grid is small."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)
    side = max(4.0, min(16.0, 0.45 * len(labels) + 2.5))
    figure = _figure(side + 1.0, side)
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_title(title)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(labels) <= MAX_LABELLED_CLASSES:
        ticks = range(len(labels))
        axes.set_xticks(ticks, labels=list(labels), rotation=45, ha="right")
        axes.set_yticks(ticks, labels=list(labels))
        if len(labels) <= 20:
            threshold = counts.max() / 2 if counts.size else 0
            for (row, column), value in np.ndenumerate(counts):
                colour = "white" if value > threshold else "black"
                axes.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    return _png(figure)


def precision_recall_png(
    curves: Mapping[str, Mapping[str, Sequence[float]]], title: str = "Precision-recall (IoU 0.5)"
) -> bytes:
    """One curve per class: precision (made monotone, as AP reads it) against recall."""
    figure = _figure(7.0, 5.0)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        recall, precision = list(curve["recall"]), list(curve["precision"])
        axes.step([0.0, *recall], [precision[0] if precision else 0.0, *precision], where="post", label=label)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(loc="lower left", fontsize=8, ncols=2 if len(curves) > 8 else 1)
    return _png(figure)
