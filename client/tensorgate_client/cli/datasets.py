"""`tensorgate datasets …`: create from a folder or an archive with an upload bar, follow the extraction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.networks import json_value
from tensorgate_client.cli.output import add_row
from tensorgate_client.cli.serving import one_target, target_options
from tensorgate_client.errors import ApiError, WaitTimeout
from tensorgate_client.models import Dataset


@cli.group()
def datasets() -> None:
    """Datasets: labelled images to measure networks on (docs/datasets.md)."""


@datasets.command("create")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="Unique in the account (default: the folder or archive name).")
@click.option(
    "--kind",
    type=click.Choice(["classification", "detection"]),
    default="classification",
    show_default=True,
    help="detection takes COCO's instances.json.",
)
@click.option("--classes", help='Class ids as JSON, e.g. {"cat": 0, "dog": 1} (default: derived from the labels).')
@click.option("--collection-date", help="yyyy-mm-dd")
@click.option("--description")
@click.option("--no-wait", is_flag=True, help="Return once the archive is uploaded.")
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="Seconds to wait for the extraction.")
@output_options
@click.pass_obj
def create(
    state: State,
    path: Path,
    name: str | None,
    kind: str,
    classes: str | None,
    collection_date: str | None,
    description: str | None,
    no_wait: bool,
    timeout: float,
) -> None:
    """Create a dataset from PATH: a folder (a folder per class; images and labels.csv or labels.jsonl; COCO)
    or a .zip/.tar.gz archive of one. Shows the upload, then the extraction's progress, then its summary."""
    client, output = state.client, state.output
    given_classes = json_value(classes, "--classes")
    if given_classes is not None and not isinstance(given_classes, dict):
        raise click.BadParameter("must be a JSON object of class names and ids", param_hint="--classes")
    with output.upload_bar(f"uploading {path.name}") as bar:
        dataset = client.datasets.create(
            path,
            name=name or _default_name(path),
            kind=kind,
            classes=given_classes,
            collection_date=collection_date,
            description=description,
            progress=bar,
            on_stage=bar.stage,
        )
    if no_wait:
        _show(state, dataset)
        return
    with output.status(f"dataset {dataset.id}: extracting") as show:
        try:
            dataset = client.datasets.wait(
                dataset.id,
                timeout=timeout,
                on_poll=lambda current, elapsed: show(f"dataset {current.id}: {current.status}, {elapsed:.0f} s"),
            )
        except WaitTimeout:
            raise Failed(f"Dataset {dataset.id} was still being extracted after {timeout:g} s.", TIMEOUT) from None
    _show(state, dataset)
    if dataset.status == "error":
        raise Failed(f"The extraction of dataset {dataset.id} failed: {dataset.error or 'no reason given'}")


@datasets.command("list")
@click.option("--search", help="A part of the name, description or author, any case.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@output_options
@click.pass_obj
def list_datasets(state: State, search: str | None, offset: int, limit: int) -> None:
    """The account's datasets."""
    page = state.client.datasets.list(offset, limit, search=search)
    if state.output.as_json:
        state.output.json(page.model_dump(mode="json", exclude={"results": {"__all__": {"upload"}}}))
        return
    table = Table()
    for column in ("id", "name", "kind", "status", "items", "item errors"):
        table.add_column(column, overflow="fold")
    for dataset in page.results:
        extraction = dataset.extraction or {}
        add_row(
            table,
            str(dataset.id),
            dataset.name,
            dataset.kind,
            dataset.status,
            str(extraction.get("items", "-")),
            str(extraction.get("item_errors", "-")),
        )
    state.output.table(table)
    state.output.line(f"{len(page.results)} of {page.count}")


@datasets.command("get")
@click.argument("dataset")
@output_options
@click.pass_obj
def get(state: State, dataset: str) -> None:
    """One dataset, by id or exact name: its classes and its extraction's summary."""
    _show(state, _dataset(state, dataset))


@datasets.command("errors")
@click.argument("dataset")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@output_options
@click.pass_obj
def errors(state: State, dataset: str, limit: int) -> None:
    """The last extraction's item errors, one per line."""
    found = state.client.datasets.errors(_dataset(state, dataset).id, limit=limit)
    if state.output.as_json:
        state.output.json(found)
        return
    table = Table()
    table.add_column("item", overflow="fold")
    table.add_column("error", overflow="fold", ratio=1)
    for item in found.get("results") or []:
        add_row(table, str(item.get("item", "-")), str(item.get("error")))
    state.output.table(table)


@datasets.command("delete")
@click.argument("datasets_given", metavar="DATASET...", nargs=-1, required=True)
@output_options
@click.pass_obj
def delete(state: State, datasets_given: tuple[str, ...]) -> None:
    """Delete datasets (by id or name), their items, versions and splits."""
    for given in datasets_given:
        dataset_id = _dataset(state, given).id
        state.client.datasets.delete(dataset_id)
        if state.output.as_json:
            state.output.json({"id": dataset_id, "deleted": True})
        else:
            state.output.line(f"Deleted dataset {dataset_id}.")


@datasets.command("cancel")
@click.argument("dataset")
@click.option("--version", "version_name", help="Cancel this version's transformation.")
@click.option(
    "--evaluation",
    type=(int, int),
    default=None,
    metavar="SPLIT_ID EVALUATION_ID",
    help="Cancel this evaluation (and its batch job).",
)
@output_options
@click.pass_obj
def cancel(state: State, dataset: str, version_name: str | None, evaluation: tuple[int, int] | None) -> None:
    """Cancel DATASET's pending extraction, or one of its transformations or evaluations: nothing half-made stays."""
    if version_name is not None and evaluation is not None:
        raise click.UsageError("Give at most one of --version and --evaluation.")
    dataset_id = _dataset(state, dataset).id
    answer: dict[str, Any]
    if version_name is not None:
        answer, what = state.client.datasets.cancel_version(dataset_id, version_name), f"version {version_name}"
    elif evaluation is not None:
        cancelled = state.client.datasets.cancel_evaluation(dataset_id, *evaluation)
        answer, what = cancelled.model_dump(mode="json"), f"evaluation {cancelled.id}"
    else:
        answer, what = state.client.datasets.cancel(dataset_id).model_dump(mode="json"), "extraction"
    if state.output.as_json:
        state.output.json(answer)
    else:
        state.output.line(f"Dataset {dataset_id}: {what} {answer.get('status')}.")


def _dataset(state: State, given: str) -> Dataset:
    return state.client.datasets.get(int(given)) if given.isdigit() else state.client.datasets.lookup(given)


def _default_name(path: Path) -> str:
    name = path.resolve().name
    for suffix in (".tar.gz", ".tgz", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def _show(state: State, dataset: Dataset) -> None:
    if state.output.as_json:
        state.output.json(dataset.model_dump(mode="json", exclude={"upload"}))
        return
    extraction = dataset.extraction or {}
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", str(dataset.id)),
        ("name", dataset.name),
        ("kind", dataset.kind),
        ("status", dataset.status),
        ("extraction task", str(dataset.task_id)),
        ("items", str(extraction.get("items", "-"))),
        ("item errors", str(extraction.get("item_errors", "-"))),
        ("classes", json.dumps(dataset.classes) if dataset.classes else "-"),
    ]
    if dataset.error:
        rows.append(("error", dataset.error))
    for title, value in rows:
        add_row(table, title, value)
    state.output.table(table)


@datasets.command("split")
@click.argument("dataset")
@click.argument("name")
@click.option("--part", "parts", multiple=True, required=True, help="NAME=PERCENT, e.g. train=80 (repeatable).")
@click.option("--version", default="v1", show_default=True, help="The version split.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The same seed, the same draw.")
@click.option("--no-stratify", is_flag=True, help="Draw items regardless of their labels.")
@click.option("--exclude", "exclude_labels", multiple=True, help="A label left out (repeatable).")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for the draw.")
@output_options
@click.pass_obj
def split(
    state: State,
    dataset: str,
    name: str,
    parts: tuple[str, ...],
    version: str,
    seed: int,
    no_stratify: bool,
    exclude_labels: tuple[str, ...],
    timeout: float,
) -> None:
    """Split a version of DATASET into named parts by percentage; prints each part's item count."""
    shares: dict[str, float] = {}
    for part in parts:
        part_name, _, percentage = part.partition("=")
        try:
            shares[part_name] = float(percentage)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not NAME=PERCENT", param_hint="--part") from None
    client = state.client
    found = _dataset(state, dataset)
    made = client.datasets.split(
        found.id, name, shares, version=version, seed=seed, stratify=not no_stratify, exclude_labels=exclude_labels
    )
    with state.output.status(f"split {made.id}: drawing"):
        try:
            made = client.datasets.wait_for(
                lambda: client.datasets.get_split(found.id, made.id), f"split {made.id}", timeout=timeout
            )
        except WaitTimeout:
            raise Failed(f"Split {made.id} was still being drawn after {timeout:g} s.", TIMEOUT) from None
    if state.output.as_json:
        state.output.json(made.model_dump(mode="json"))
    else:
        table = Table(title=f"split {made.id} ({made.name}) of {found.name} {made.version}, seed {made.seed}")
        table.add_column("part")
        table.add_column("items", justify="right")
        for part_name, count in made.counts.items():
            add_row(table, part_name, str(count))
        state.output.table(table)
    if made.status == "error":
        raise Failed(f"Split {made.id} failed: {made.error or 'no reason given'}")


@datasets.command("evaluate")
@click.argument("dataset")
@click.argument("split_id", type=int)
@target_options
@click.option("--endpoint", "endpoint_id", type=int, help="An endpoint: its target.")
@click.option("--part", default="test", show_default=True, help="The split's part scored.")
@click.option("--output-tensor", help="The network's scores tensor (default: its first output).")
@click.option(
    "--plots",
    "plots_to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to download the plots (PNG) to.",
)
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="Seconds to wait for the scores.")
@output_options
@click.pass_obj
def evaluate(
    state: State,
    dataset: str,
    split_id: int,
    network_id: int | None,
    version_id: int | None,
    spec_id: int | None,
    endpoint_id: int | None,
    part: str,
    output_tensor: str | None,
    plots_to: Path | None,
    timeout: float,
) -> None:
    """Score a target on a part of a split of DATASET: accuracy, top-5, per-class precision, recall and F1; for a
    detection dataset (through a recognition version), mAP@0.5 and mAP@0.5:0.95 and per-class AP."""
    client = state.client
    if endpoint_id is not None:
        if any(value is not None for value in (network_id, version_id, spec_id)):
            raise click.UsageError("Give exactly one of --network, --version, --spec or --endpoint.")
        chosen: dict[str, Any] = {"endpoint_id": endpoint_id}
    else:
        chosen = one_target(network_id, version_id, spec_id)
    found = _dataset(state, dataset)
    evaluation = client.datasets.evaluate(found.id, split_id, part=part, output_tensor=output_tensor, **chosen)
    with state.output.status(f"evaluation {evaluation.id}: running"):
        try:
            evaluation = client.datasets.wait_for(
                lambda: client.datasets.metrics(found.id, split_id, evaluation.id),
                f"evaluation {evaluation.id}",
                timeout=timeout,
            )
        except WaitTimeout:
            raise Failed(f"Evaluation {evaluation.id} had not ended after {timeout:g} s.", TIMEOUT) from None
    if evaluation.status in ("error", "cancelled"):
        raise Failed(f"Evaluation {evaluation.id} {evaluation.status}: {evaluation.error or 'no reason given'}")
    saved = {}
    if plots_to is not None:
        plots_to.mkdir(parents=True, exist_ok=True)
        for name, url in evaluation.plots.items():
            target = plots_to / f"{name}.png"
            try:  # a signed URL: no API key, storage's sentence when it is refused
                picture = client.transport.request("GET", url, authenticated=False).content
            except ApiError as error:
                raise ApiError(error.status, f"The plot {name} could not be downloaded: {error.message}") from None
            target.write_bytes(picture)
            saved[name] = str(target)
    if state.output.as_json:
        state.output.json(evaluation.model_dump(mode="json") | {"saved_plots": saved})
        return
    scores = evaluation.metrics or {}
    if evaluation.kind == "detection":
        _show_detection(state, evaluation.id, scores, saved)
        return
    state.output.line(
        f"evaluation {evaluation.id}: {scores.get('items', 0)} items, accuracy {float(scores.get('accuracy', 0)):.4f}, "
        f"top-5 {float(scores.get('top_5', 0)):.4f}"
    )
    table = Table()
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, values in (scores.get("per_class") or {}).items():
        add_row(
            table,
            label,
            *(f"{float(values.get(key, 0)):.3f}" for key in ("precision", "recall", "f1")),
            str(values.get("support", 0)),
        )
    state.output.table(table)
    for name, path in saved.items():
        state.output.line(f"{name}: {path}")


def _show_detection(state: State, evaluation_id: int, scores: dict[str, Any], saved: dict[str, str]) -> None:
    state.output.line(
        f"evaluation {evaluation_id}: {scores.get('items', 0)} images, mAP@0.5 {float(scores.get('map_50', 0)):.4f}, "
        f"mAP@0.5:0.95 {float(scores.get('map_50_95', 0)):.4f}"
    )
    table = Table()
    for column in ("label", "AP@0.5", "AP@0.5:0.95", "boxes"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, values in (scores.get("per_class") or {}).items():
        add_row(
            table,
            label,
            f"{float(values.get('ap_50', 0)):.3f}",
            f"{float(values.get('ap_50_95', 0)):.3f}",
            str(values.get("ground_truths", 0)),
        )
    state.output.table(table)
    for name, path in saved.items():
        state.output.line(f"{name}: {path}")
