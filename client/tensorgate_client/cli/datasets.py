"""`tensorgate datasets …`: create from a folder or an archive with an upload bar, follow the extraction."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.networks import json_value
from tensorgate_client.cli.output import add_row
from tensorgate_client.errors import WaitTimeout
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
