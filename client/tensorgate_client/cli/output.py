"""What the command prints: rich tables for people, JSON for scripts, progress only on a terminal."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from tensorgate_client.models import Network, RecognitionSpec, RecognitionVersion, Task


@dataclass
class Output:
    """The command's way of speaking: `--json`, `-q`, and the consoles (tables on stdout, progress on stderr)."""

    as_json: bool = False
    quiet: bool = False
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    @property
    def shows_progress(self) -> bool:
        """Bars and live lines only where someone watches: a terminal, not a pipe, not with -q or --json."""
        return self.err.is_terminal and not self.quiet and not self.as_json

    @property
    def for_people(self) -> bool:
        return not self.quiet and not self.as_json

    def json(self, document: Any) -> None:
        click.echo(json.dumps(document, default=str))

    def line(self, text: str) -> None:
        if self.for_people:
            self.out.print(text, markup=False)

    def note(self, text: str) -> None:
        """A remark on stderr (what happened on the way), never mixed with the data on stdout."""
        if not self.quiet:
            self.err.print(text, markup=False)

    def table(self, table: Table) -> None:
        if self.for_people:
            self.out.print(table)

    @contextmanager
    def upload_bar(self, description: str) -> Iterator[Any]:
        """A byte progress bar (sent / total, rate, time left); the callback is a no-op when no bar is shown."""
        if not self.shows_progress:
            yield UploadBar()
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        )
        task = progress.add_task(description, total=None)
        with progress:
            yield UploadBar(progress, task)

    @contextmanager
    def count_bar(self, description: str, total: int) -> Iterator[Any]:
        """Items done of `total`; the callback advances it by one."""
        if not self.shows_progress or total < 2:
            yield lambda: None
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        )
        task = progress.add_task(description, total=total)
        with progress:
            yield lambda: progress.advance(task)

    @contextmanager
    def job_bar(self, description: str) -> Iterator[Any]:
        """A job's items ended of its total, saying how many are done, failed and cancelled; the callback takes
        `(done, failed, cancelled, total)`. A job over an archive counts 0 items until its images are listed:
        the bar waits for a total rather than showing none."""
        if not self.shows_progress:
            yield lambda done, failed, cancelled, total: None
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        )
        task = progress.add_task(description, total=None, counts="items not counted yet")

        def show(done: int, failed: int, cancelled: int, total: int) -> None:
            counts = f"{done} done, {failed} failed" + (f", {cancelled} cancelled" if cancelled else "")
            progress.update(
                task,
                completed=done + failed + cancelled,
                total=total or None,
                counts=f"{counts} of {total}" if total else "items not counted yet",
            )

        with progress:
            yield show

    @contextmanager
    def status(self, text: str) -> Iterator[Any]:
        """A live status line; the callback replaces its text. Nothing when not on a terminal."""
        if not self.shows_progress:
            yield lambda new_text: None
            return
        with self.err.status(text) as live:
            yield lambda new_text: live.update(new_text)


class UploadBar:
    """`bar(sent, total)` moves it; `bar.stage(text)` renames it and starts it again (zipping, then uploading)."""

    def __init__(self, progress: Progress | None = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def __call__(self, sent: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=sent, total=total)

    def stage(self, text: str) -> None:
        if self._progress is not None:
            self._progress.reset(self._task, total=None, description=text)


def network_rows(networks: Sequence[Network]) -> Table:
    table = Table(title=None, show_lines=False)
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=16)
    for column in ("status", "framework", "updated"):
        table.add_column(column, no_wrap=True)
    for network in networks:
        add_row(
            table,
            str(network.id),
            network.name,
            _status(network.status),
            network.framework,
            _date(network.update_date),
        )
    return table


def network_details(network: Network) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", str(network.id)),
        ("name", network.name),
        ("description", network.description or "-"),
        ("status", _status(network.status)),
        ("framework", network.framework),
        ("deploy task", str(network.task_id)),
        ("created", _date(network.create_date)),
        ("updated", _date(network.update_date)),
        ("files", ", ".join(network.files) or "-"),
        ("metadata", json.dumps(network.metadata) if network.metadata else "-"),
    ]
    if network.error:
        rows.append(("error", network.error))
    for title, tensors in (("inputs", network.inputs), ("outputs", network.outputs)):
        if tensors:
            rows.append((title, "; ".join(f"{t.name} {t.dtype} {_shape(t.shape)}" for t in tensors)))
    for title, value in rows:
        add_row(table, title, value)
    return table


def parity_table(report: dict[str, Any] | None) -> Table | None:
    """The conversion report's parity figures, one row per output: worst difference against the bound."""
    parity = (report or {}).get("parity") if isinstance(report, dict) else None
    if not isinstance(parity, dict):
        return None
    title = f"parity: {'passed' if parity.get('passed') else 'FAILED'}"
    if parity.get("checked") is False:
        title += f" ({parity.get('reason', 'not checked')})"
    table = Table(title=Text(title), title_justify="left")
    for column in ("output", "shape", "max abs diff", "max rel diff", "allowed", "passed"):
        table.add_column(column, justify="right" if "diff" in column or column == "allowed" else "left")
    if not parity.get("outputs"):
        add_row(table, "-", "", "", "", "", "not compared")
    for output in parity.get("outputs") or []:
        add_row(
            table,
            str(output.get("name")),
            _shape(output.get("shape")),
            _number(output.get("max_abs")),
            _number(output.get("max_rel")),
            _number(output.get("allowed")),
            "yes" if output.get("passed") else f"no: {output.get('problem') or 'over the bound'}",
        )
    return table


def spec_rows(specs: Sequence[RecognitionSpec]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=16)
    for column in ("outputs", "current version", "updated"):
        table.add_column(column, no_wrap=True)
    for spec in specs:
        add_row(
            table,
            str(spec.id),
            spec.name,
            "; ".join(_output_summary(output) for output in spec.outputs),
            str(spec.current_version_id) if spec.current_version_id is not None else "-",
            _date(spec.update_date),
        )
    return table


def spec_details(spec: RecognitionSpec) -> Table:
    table = _details()
    rows = [
        ("id", str(spec.id)),
        ("name", spec.name),
        ("description", spec.description or "-"),
        ("current version", str(spec.current_version_id) if spec.current_version_id is not None else "none"),
        ("updated", _date(spec.update_date)),
        ("metadata", json.dumps(spec.metadata) if spec.metadata else "-"),
    ]
    for index, output in enumerate(spec.outputs):
        labels = (output.get("labels") or {}).get("labels") or []
        names = ", ".join(f"{label.get('id')}:{label.get('name')}" for label in labels[:50])
        more = f" … ({len(labels)} in all)" if len(labels) > 50 else ""
        rows.append((f"output {index}", f"{_output_summary(output)}: {names}{more}"))
    for title, value in rows:
        add_row(table, title, value)
    return table


def version_rows(versions: Sequence[RecognitionVersion], current: int | None = None) -> Table:
    table = Table()
    for column in ("id", "spec", "network", "reads", "updated"):
        table.add_column(column, overflow="fold")
    for version in versions:
        marker = " (current)" if current is not None and version.id == current else ""
        add_row(
            table,
            f"{version.id}{marker}",
            f"{version.spec_id} {version.spec_name or ''}".strip(),
            f"{version.network_id} {version.network_name or ''}".strip(),
            "; ".join(_post_processing_summary(post) for post in version.post_processings),
            _date(version.update_date),
        )
    return table


def version_details(version: RecognitionVersion) -> Table:
    table = _details()
    rows = [
        ("id", str(version.id)),
        ("spec", f"{version.spec_id} {version.spec_name or ''}".strip()),
        ("network", f"{version.network_id} {version.network_name or ''}".strip()),
        ("updated", _date(version.update_date)),
    ]
    rows += [(f"output {i}", json.dumps(post)) for i, post in enumerate(version.post_processings)]
    for title, value in rows:
        add_row(table, title, value)
    return table


def _details() -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _output_summary(output: dict[str, Any]) -> str:
    labels = output.get("labels") or {}
    kind = "detection" if labels.get("roi") == "BBOX" else "classification"
    return f"{kind}, {len(labels.get('labels') or [])} labels"


def _post_processing_summary(post: dict[str, Any]) -> str:
    if "classification" in post:
        return f"classification of {post['classification'].get('output_tensor')}"
    detection = post.get("detection") or {}
    decoder = next((key for key in ("direct_output", "anchored_output", "yolo_output") if key in detection), "?")
    return f"detection ({decoder})"


def task_rows(tasks: Sequence[Task]) -> Table:
    table = Table()
    for column in ("id", "kind", "status", "updated"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold", ratio=1)
    for task in tasks:
        add_row(table, str(task.id), task.kind or "-", _status(task.status), _date(task.update_date), task.error or "")
    return table


def summarize_result(data: Any, top: int = 3) -> str:
    """One cell for an inference result: the boxes, the top labels, else each tensor's shape and extremes."""
    if not isinstance(data, dict):
        return "-"
    outputs = data.get("outputs")
    if isinstance(outputs, list) and outputs and all(isinstance(item, dict) and "labels" in item for item in outputs):
        return _recognized(outputs, top)
    if isinstance(outputs, list) and outputs:
        boxes = [item for item in outputs if isinstance(item.get("box"), list)]
        if boxes:  # every object found, each with its box in the picture's pixels
            return "\n".join(
                f"{item.get('label')} {float(item.get('score', 0)):.3f} [{', '.join(f'{v:g}' for v in item['box'])}]"
                for item in boxes
            )
        return "\n".join(f"{item.get('label')} {float(item.get('score', 0)):.3f}" for item in outputs[:top])
    if isinstance(outputs, list):
        return "no objects found"
    lines = []
    for tensor in data.get("tensors") or []:
        values = [value for value in tensor.get("data") or [] if isinstance(value, (int, float))]
        summary = f"{tensor.get('name')} {_shape(tensor.get('shape'))}"
        if values:
            best = max(range(len(values)), key=values.__getitem__)
            summary += f" min {min(values):.4g} max {values[best]:.4g} at {best}"
        lines.append(summary)
    return "\n".join(lines) or "-"


def _recognized(outputs: list[dict[str, Any]], top: int) -> str:
    """A recognition's labelled predictions: every box found, or the top predicted labels, per spec output."""
    lines = []
    for output in outputs:
        predicted = (output.get("labels") or {}).get("predicted") or []
        boxes = [item for item in predicted if isinstance(item.get("roi"), dict)]
        for item in boxes or predicted[:top]:
            line = f"{item.get('label_name')} {float(item.get('score', 0)):.3f}"
            bbox = (item.get("roi") or {}).get("bbox")
            if isinstance(bbox, dict):
                line += " [" + ", ".join(f"{float(bbox.get(k, 0)):g}" for k in ("xmin", "ymin", "xmax", "ymax")) + "]"
            lines.append(line)
    return "\n".join(lines) or "nothing recognised"


def add_row(table: Table, *values: str) -> None:
    """Cells are plain text: a shape such as [?, 64, 64, 3] is not rich markup."""
    table.add_row(*(Text(value) for value in values))


def _status(status: str) -> str:
    return status


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{float(value):.3g}"
