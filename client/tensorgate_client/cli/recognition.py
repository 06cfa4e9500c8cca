"""`tensorgate specs …` and `tensorgate versions …`: recognition specs and the versions that serve them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tensorgate_client.cli import State, cli, output_options
from tensorgate_client.cli.networks import json_value
from tensorgate_client.cli.output import spec_details, spec_rows, version_details, version_rows
from tensorgate_client.models import RecognitionSpec, RecognitionVersion

NO_VERSION = "none"


@cli.group()
def specs() -> None:
    """Recognition specs: the labels a recognition answers; inference on a spec runs its current version."""


@specs.command("create")
@click.argument("name")
@click.option("--label", "labels", multiple=True, help="A label, in order (repeatable); ids are 0, 1, …")
@click.option(
    "--labels-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A text file of labels, one per line, in order.",
)
@click.option(
    "--roi",
    type=click.Choice(["NONE", "BBOX"], case_sensitive=False),
    default="NONE",
    show_default=True,
    help="NONE for classification, BBOX for detection.",
)
@click.option("--exclusive", is_flag=True, help="The labels exclude each other (one per picture).")
@click.option("--outputs", help="The spec's outputs as the API takes them, JSON inline or @file (instead of labels).")
@click.option("--description")
@click.option("--metadata", help="JSON object, inline or @file.")
@output_options
@click.pass_obj
def create_spec(
    state: State,
    name: str,
    labels: tuple[str, ...],
    labels_file: Path | None,
    roi: str,
    exclusive: bool,
    outputs: str | None,
    description: str | None,
    metadata: str | None,
) -> None:
    """Create a spec named NAME from labels (--label, --labels-file) or from --outputs."""
    listed = list(labels)
    if labels_file is not None:
        listed += [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    given = json_value(outputs, "--outputs")
    if (given is None) == (not listed):
        raise click.UsageError("Give the labels (--label or --labels-file) or --outputs, one of the two.")
    if given is not None and not isinstance(given, list):
        raise click.BadParameter("must be a JSON list of outputs", param_hint="--outputs")
    spec = state.client.specs.create(
        name,
        given,
        labels=listed or None,
        roi=roi.upper(),
        exclusive=exclusive,
        description=description,
        metadata=json_value(metadata, "--metadata"),
    )
    _show_spec(state, spec)


@specs.command("list")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--all", "every", is_flag=True, help="Every page.")
@output_options
@click.pass_obj
def list_specs(state: State, offset: int, limit: int, every: bool) -> None:
    """The account's recognition specs."""
    output = state.output
    found = list(state.client.specs.iterate()) if every else None
    page = None if every else state.client.specs.list(offset, limit)
    results = found if found is not None else page.results if page is not None else []
    if output.as_json:
        count = len(results) if page is None else page.count
        output.json(
            {
                "count": count,
                "next": page.next if page else None,
                "previous": page.previous if page else None,
                "results": [_wire(spec) for spec in results],
            }
        )
        return
    output.table(spec_rows(results))
    if page is not None:
        shown_to = offset + len(page.results)
        output.line(f"{len(page.results)} of {page.count}" + (f"; next: --offset {shown_to}" if page.next else ""))


@specs.command("get")
@click.argument("spec_id")
@output_options
@click.pass_obj
def get_spec(state: State, spec_id: str) -> None:
    """One spec: its labels and its current version."""
    _show_spec(state, state.client.specs.get(spec_id))


@specs.command("update")
@click.argument("spec_id")
@click.option("--name")
@click.option("--description")
@click.option("--metadata", help="JSON object, inline or @file (replaces the metadata).")
@click.option(
    "--current-version",
    help=f"The version inference on the spec runs from now on (a version id of this spec, or '{NO_VERSION}').",
)
@output_options
@click.pass_obj
def update_spec(
    state: State,
    spec_id: str,
    name: str | None,
    description: str | None,
    metadata: str | None,
    current_version: str | None,
) -> None:
    """Change the name, description, metadata, or switch the current version (the labels never change)."""
    changes: dict[str, Any] = {}
    if current_version is not None:
        if current_version.lower() != NO_VERSION and not current_version.isdigit():
            raise click.BadParameter(f"is a version id or '{NO_VERSION}'", param_hint="--current-version")
        changes["current_version_id"] = None if current_version.lower() == NO_VERSION else int(current_version)
    if name is None and description is None and metadata is None and not changes:
        raise click.UsageError("Give at least one of --name, --description, --metadata or --current-version.")
    spec = state.client.specs.update(
        spec_id, name=name, description=description, metadata=json_value(metadata, "--metadata"), **changes
    )
    _show_spec(state, spec)


@specs.command("delete")
@click.argument("spec_ids", nargs=-1, required=True)
@output_options
@click.pass_obj
def delete_spec(state: State, spec_ids: tuple[str, ...]) -> None:
    """Delete specs and their versions (the networks stay)."""
    for spec_id in spec_ids:
        state.client.specs.delete(spec_id)
        if state.output.as_json:
            state.output.json({"id": int(spec_id) if spec_id.isdigit() else spec_id, "deleted": True})
        else:
            state.output.line(f"Deleted spec {spec_id} and its versions.")


@specs.command("versions")
@click.argument("spec_id")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@output_options
@click.pass_obj
def spec_versions(state: State, spec_id: str, offset: int, limit: int) -> None:
    """The versions of one spec."""
    page = state.client.specs.versions(spec_id, offset, limit)
    if state.output.as_json:
        state.output.json(page.model_dump(mode="json"))
        return
    current = state.client.specs.get(spec_id).current_version_id
    state.output.table(version_rows(page.results, current))
    state.output.line(f"{len(page.results)} of {page.count}")


@cli.group()
def versions() -> None:
    """Recognition versions: a spec bound to a network, with how to read the network's tensors."""


@versions.command("create")
@click.option("--spec", "spec_id", required=True, help="The spec the version answers for.")
@click.option("--network", "network_id", required=True, help="A ready network.")
@click.option(
    "--post-processings",
    help="One entry per spec output, JSON inline or @file (docs/recognition.md): classification or detection.",
)
@click.option("--classification", "output_tensor", help="Shortcut: classify with this tensor, one score per label.")
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="With --classification: every label's threshold.",
)
@output_options
@click.pass_obj
def create_version(
    state: State,
    spec_id: str,
    network_id: str,
    post_processings: str | None,
    output_tensor: str | None,
    threshold: float,
) -> None:
    """Create a version of a spec on a network. A spec's first version becomes its current one."""
    given = json_value(post_processings, "--post-processings")
    if (given is None) == (output_tensor is None):
        raise click.UsageError("Give --post-processings or --classification TENSOR, one of the two.")
    if given is None:
        spec = state.client.specs.get(spec_id)
        if len(spec.outputs) != 1:
            raise click.UsageError(
                f"Spec {spec_id} has {len(spec.outputs)} outputs; --classification makes one: use --post-processings."
            )
        count = len(spec.outputs[0].get("labels", {}).get("labels", []))
        given = [{"classification": {"output_tensor": output_tensor, "thresholds": [threshold] * count}}]
    if not isinstance(given, list):
        raise click.BadParameter("must be a JSON list, one entry per spec output", param_hint="--post-processings")
    version = state.client.versions.create(_id(spec_id), _id(network_id), given)
    _show_version(state, version)


@versions.command("list")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@output_options
@click.pass_obj
def list_versions(state: State, offset: int, limit: int) -> None:
    """The account's recognition versions."""
    page = state.client.versions.list(offset, limit)
    if state.output.as_json:
        state.output.json(page.model_dump(mode="json"))
        return
    state.output.table(version_rows(page.results))
    state.output.line(f"{len(page.results)} of {page.count}")


@versions.command("get")
@click.argument("version_id", type=int)
@output_options
@click.pass_obj
def get_version(state: State, version_id: int) -> None:
    """One version: its spec, its network and its post-processings."""
    _show_version(state, state.client.versions.get(version_id))


@versions.command("delete")
@click.argument("version_ids", nargs=-1, required=True, type=int)
@output_options
@click.pass_obj
def delete_version(state: State, version_ids: tuple[int, ...]) -> None:
    """Delete versions; a spec whose current version goes has none until one is set."""
    for version_id in version_ids:
        state.client.versions.delete(version_id)
        if state.output.as_json:
            state.output.json({"id": version_id, "deleted": True})
        else:
            state.output.line(f"Deleted version {version_id}.")


def _show_spec(state: State, spec: RecognitionSpec) -> None:
    if state.output.as_json:
        state.output.json(_wire(spec))
    else:
        state.output.table(spec_details(spec))


def _show_version(state: State, version: RecognitionVersion) -> None:
    if state.output.as_json:
        state.output.json(version.model_dump(mode="json"))
    else:
        state.output.table(version_details(version))


def _wire(spec: RecognitionSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")


def _id(value: str) -> int | str:
    return int(value) if value.isdigit() else value
