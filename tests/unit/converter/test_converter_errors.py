"""Library errors quoted in a conversion failure keep their cause, never just a heading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from functions.converter.errors import error_summary
from tests.unit.converter import models


def test_error_summary_of_tensorflows_graph_execution_error_keeps_the_cause(
    classifier_saved_model: Path, tmp_path: Path
) -> None:
    # Given a SavedModel whose variables.index is empty, loaded as the session converter loads it
    broken = Path(shutil.copytree(classifier_saved_model, tmp_path / "broken"))
    (broken / "variables" / "variables.index").write_bytes(b"")
    tf = models.tf()
    graph = tf.Graph()
    with pytest.raises(Exception) as raised, tf.compat.v1.Session(graph=graph) as session, graph.as_default():
        tf.compat.v1.saved_model.loader.load(session, ["serve"], str(broken))
    assert str(raised.value).splitlines()[0] == "Graph execution error:"

    # When it is summarised for a message
    summary = error_summary(raised.value)

    # Then the cause and the node are in the one line
    assert summary == "Graph execution error: file is too short to be an sstable (node RestoreV2)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Graph execution error:\n\nDetected at node model/conv/Conv2D defined at (most recent call last):\n"
            '  File "train.py", line 3, in <module>\n'
            "Node: 'model/conv/Conv2D'\n"
            "input depth must be evenly divisible by filter depth: 4 vs 3\n"
            "\t [[{{node model/conv/Conv2D}}]] [Op:__inference_signature_wrapper_123]",
            "Graph execution error: input depth must be evenly divisible by filter depth: 4 vs 3 "
            "(node model/conv/Conv2D)",
        ),
        ("Graph execution error:", "Graph execution error (RuntimeError)"),
        ("Unsupported data type 12\nmore detail below", "Unsupported data type 12"),
        ("", "RuntimeError"),
        ("x" * 900, "x" * 499 + "…"),
    ],
)
def test_error_summary_is_one_useful_line(text: str, expected: str) -> None:
    assert error_summary(RuntimeError(text)) == expected
