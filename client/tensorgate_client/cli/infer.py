"""`tensorgate infer TARGET INPUT…`: files, folders, globs or URLs through a network, a recognition spec or a
version, run concurrently, results as a table."""

from __future__ import annotations

import glob
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests
from rich.table import Table

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.output import add_row, summarize_result
from tensorgate_client.client import Client
from tensorgate_client.errors import ApiError, ConnectionFailed, WaitTimeout

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
URL_PREFIXES = ("http://", "https://", "s3://")


@dataclass
class Outcome:
    """One input's inference: its task, or why there is none."""

    source: str
    task_id: int | None = None
    status: str = "error"
    error: str | None = None
    data: Any = None
    timed_out: bool = False
    drawn: str | None = None

    def document(self) -> dict[str, Any]:
        document = {"input": self.source, "task_id": self.task_id, "status": self.status, "error": self.error}
        document["data"] = self.data
        if self.drawn is not None:
            document["drawn"] = self.drawn
        return document


def expand_inputs(inputs: tuple[str, ...]) -> list[str]:
    """URLs as they are; a folder's pictures (sorted, not recursive); a file; else a glob pattern's files."""
    found: list[str] = []
    for item in inputs:
        if item.startswith(URL_PREFIXES):
            found.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            pictures = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not pictures:
                raise click.BadParameter(f"the folder {item} holds no pictures", param_hint="INPUT")
            found += pictures
        elif path.is_file():
            found.append(item)
        else:
            matched = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matched:
                raise click.BadParameter(
                    f"{item} is no file, folder, URL or pattern matching a file", param_hint="INPUT"
                )
            found += matched
    return list(dict.fromkeys(found))


TARGET_KINDS = ("spec", "version")


def target_of(target: str) -> tuple[str, str]:
    """`spec:ID` or `version:ID` for a recognition; anything else is a network id (or a public slug)."""
    kind, separator, rest = target.partition(":")
    if separator and kind in TARGET_KINDS:
        if not rest:
            raise click.BadParameter(f"{kind}: needs an id, e.g. {kind}:12", param_hint="TARGET")
        if kind == "version" and not rest.isdigit():
            raise click.BadParameter("a version id is a number, e.g. version:12", param_hint="TARGET")
        return kind, rest
    return "network", target


@cli.command()
@click.argument("target")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output-tensor", "output_tensors", multiple=True, help="A tensor to return (repeatable).")
@click.option("--threshold", "bounding_box_threshold", type=float, help="Detection score threshold.")
@click.option("--iou", "iou_threshold", type=float, help="Detection non-maximum suppression IoU.")
@click.option("--max-objects", type=int, help="Detections kept per picture.")
@click.option(
    "--show-discarded", is_flag=True, default=None, help="Through a spec or version: the labels under threshold too."
)
@click.option("--max-predictions", type=click.IntRange(min=1), help="Through a spec or version: labels per picture.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Labels shown per picture.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for each result.")
@click.option(
    "--draw",
    "draw_to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write each picture to, with its boxes and labels drawn.",
)
@output_options
@click.pass_obj
def infer(
    state: State,
    target: str,
    inputs: tuple[str, ...],
    output_tensors: tuple[str, ...],
    top: int,
    concurrency: int,
    timeout: float,
    draw_to: Path | None,
    **detection: Any,
) -> None:
    """Run TARGET on each INPUT (picture files, folders, glob patterns, http(s) URLs), several at a time.

    TARGET is a network id, `spec:ID` (the spec's current version) or `version:ID`. Prints the boxes or
    top labels found (or each tensor's shape and extremes) per input; with --json, one JSON document per
    input (JSON Lines). Exit 1 when an inference failed, 3 when one timed out.
    """
    kind, target_id = target_of(target)
    sources = expand_inputs(inputs)
    options = {key: value for key, value in detection.items() if value is not None}
    client, output = state.client, state.output
    if draw_to is not None:
        _pillow_or_usage()

    # Pictures of the same name from different folders are drawn as NNN-name, so none overwrites another.
    names = [_picture_name(source) for source in sources]
    drawn_names = {
        source: f"{index:03d}-{name}" if names.count(name) > 1 else name
        for index, (source, name) in enumerate(zip(sources, names, strict=True))
    }

    def run(source: str) -> Outcome:
        outcome = Outcome(source)
        try:
            image: str | Path = source if source.startswith(URL_PREFIXES) else Path(source)
            resource = {"network": client.networks, "spec": client.specs, "version": client.versions}[kind]
            outcome.task_id = resource.infer(  # type: ignore[attr-defined]
                target_id if kind != "version" else int(target_id),
                image,
                output_tensors=output_tensors or None,
                options=options,
            )
            task = client.tasks.wait(outcome.task_id, timeout=timeout)
            outcome.status, outcome.error, outcome.data = task.status, task.error, task.data
        except WaitTimeout:
            outcome.status, outcome.timed_out = "pending", True
            outcome.error = f"no result after {timeout:g} s"
        except (ApiError, ConnectionFailed, OSError) as error:
            outcome.error = str(error)
        if draw_to is not None and outcome.status == "success":
            try:
                outcome.drawn = _draw(client, source, outcome.data, draw_to / drawn_names[source])
            except (OSError, requests.RequestException, ValueError) as error:
                outcome.error = f"not drawn: {error}"
        return outcome

    outcomes: list[Outcome] = []
    with output.count_bar("inferring", len(sources)) as advance, ThreadPoolExecutor(concurrency) as pool:
        for outcome in pool.map(run, sources):
            outcomes.append(outcome)
            advance()
            if output.as_json:
                output.json(outcome.document())
    if output.for_people:
        table = Table()
        for column in ("input", "task", "status", "result"):
            table.add_column(column, overflow="fold")
        for outcome in outcomes:
            result = summarize_result(outcome.data, top) if outcome.status == "success" else outcome.error or ""
            if outcome.drawn:
                result += f"\ndrawn: {outcome.drawn}"
            add_row(table, outcome.source, str(outcome.task_id or "-"), outcome.status, result)
        output.table(table)
    _exit_status(outcomes)


def _exit_status(outcomes: list[Outcome]) -> None:
    timed_out = [outcome for outcome in outcomes if outcome.timed_out]
    failed = [outcome for outcome in outcomes if outcome.status == "error"]
    if failed:
        first = failed[0]
        raise Failed(f"{len(failed)} of {len(outcomes)} inferences failed; {first.source}: {first.error}")
    if timed_out:
        raise Failed(f"{len(timed_out)} of {len(outcomes)} inferences had no result in time.", TIMEOUT)


def _picture_name(source: str) -> str:
    if source.startswith(URL_PREFIXES):
        return Path(source.split("?", 1)[0].rstrip("/")).name or "picture"
    return Path(source).name


def _draw(client: Client, source: str, data: Any, target: Path) -> str | None:
    from tensorgate_client.draw import boxes_of, draw_boxes

    if source.startswith(URL_PREFIXES):
        if not source.startswith(("http://", "https://")):
            return None  # an s3:// input is read by the service, not by this machine
        picture = client.transport.session.get(source, timeout=client.transport.timeout).content
    else:
        picture = Path(source).read_bytes()
    return str(draw_boxes(picture, boxes_of(data), target))


def _pillow_or_usage() -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise click.UsageError("--draw needs Pillow: pip install pillow.") from None
