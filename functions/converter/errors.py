"""The converter's one domain error: a readable sentence, a stable reason code, and details."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a conversion failed; stable codes a caller can branch on without reading the message."""

    NO_MODEL = "no_model"
    AMBIGUOUS_MODEL = "ambiguous_model"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT_FILE = "corrupt_file"
    UNSAFE_ARCHIVE = "unsafe_archive"
    UNSAFE_MODEL = "unsafe_model"
    INVALID_OPTIONS = "invalid_options"
    INVALID_DECLARATION = "invalid_declaration"
    UNKNOWN_TENSOR = "unknown_tensor"
    UNSUPPORTED_OPS = "unsupported_ops"
    CONVERSION_ERROR = "conversion_error"
    INVALID_ONNX = "invalid_onnx"
    RUNTIME_ERROR = "runtime_error"
    PARITY_EXCEEDED = "parity_exceeded"
    EXPECTED_OUTPUT_MISMATCH = "expected_output_mismatch"
    SPEC_MISMATCH = "spec_mismatch"
    INVALID_TEST_DATA = "invalid_test_data"
    MISSING_FILE = "missing_file"


class ConversionFailed(Exception):
    """The uploaded network cannot be served; `message` says why in a sentence a user can act on.

    Every failure the user can cause (bad files, unknown tensor names, numbers beyond tolerance)
    is raised as this class. Anything else escaping `convert_network` is a bug in Tensorgate.
    """

    def __init__(self, reason: Reason, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "message": self.message, "details": self.details}


def listing(names: list[str] | tuple[str, ...] | set[str], limit: int = 30) -> str:
    """`a, b, c` for a message, cut after `limit` names so a huge graph never floods it."""
    ordered = sorted(names) if isinstance(names, set) else list(names)
    if not ordered:
        return "(none)"
    shown = ", ".join(repr(name) for name in ordered[:limit])
    if len(ordered) > limit:
        shown += f" and {len(ordered) - limit} more"
    return shown


_NODE_ANNOTATION = re.compile(r"\s*\[\[\{\{node ([^}]+)\}\}\]\]|\s*\[Op:[^\]]*\]")
_NOISE_LINES = ("Traceback", "Detected at node", "During handling", "File ")


def error_summary(error: BaseException, limit: int = 500) -> str:
    """One line saying what a library error was, for a sentence that quotes it.

    The first line, unless it is only a heading (TensorFlow's "Graph execution error:" puts the cause
    on the lines after it): then the heading and the unindented lines under it, without tracebacks and
    with `[[{{node X}}]]` annotations turned into "(node X)". Never empty: the type name at worst.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    lines = text.splitlines()
    head = lines[0].strip()
    if head.endswith(":"):
        nodes: list[str] = []
        parts: list[str] = []
        for raw in lines[1:]:
            nodes += _NODE_ANNOTATION.findall(raw)
            line = _NODE_ANNOTATION.sub("", raw).rstrip()
            if not line.strip() or raw[:1].isspace() or line.startswith(_NOISE_LINES):
                continue
            if line.startswith("Node: "):
                nodes.append(line.removeprefix("Node: ").strip("'\""))
                continue
            parts.append(line.strip())
        if not parts:
            return f"{head.removesuffix(':')} ({type(error).__name__})"
        head = f"{head} {' '.join(parts)}"
        nodes = [node for node in dict.fromkeys(nodes) if node]
        if nodes:
            head += f" (node {nodes[0]})"
    head = _NODE_ANNOTATION.sub("", head).strip() or type(error).__name__
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "…"
