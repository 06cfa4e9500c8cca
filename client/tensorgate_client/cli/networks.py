"""`tensorgate networks …`: create from a path with an upload bar, list, get, update, delete, wait."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.output import Output, network_details, network_rows, parity_table
from tensorgate_client.client import Client
from tensorgate_client.errors import WaitTimeout
from tensorgate_client.models import Network
from tensorgate_client.uploads import upload_name

FRAMEWORKS = ("tensorflow-1.x", "tensorflow-2.x", "keras", "tflite", "onnx", "pytorch")
# Flag → key of `preprocessing.inputs[0].image` (the v0.7 names).
IMAGE_FLAGS = {
    "dimension_order": "dimension_order",
    "target_size": "target_size",
    "resize_type": "resize_type",
    "mean_file": "mean_file",
    "color_channels": "color_channels",
    "pixel_scaling": "pixel_scaling",
    "data_type": "data_type",
    "resampling": "resampling",
}


def json_value(value: str | None, what: str) -> Any:
    """A JSON option: inline JSON, `@file`, or the path of a .json file."""
    if value is None:
        return None
    text = value
    candidate = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (value.endswith(".json") and candidate.is_file()):
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError as error:
            raise click.BadParameter(f"cannot read {candidate}: {error.strerror}", param_hint=what) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"is not JSON ({error})", param_hint=what) from None


@cli.group()
def networks() -> None:
    """Networks of your account."""


@networks.command("create")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="Network name (default: the file or folder name).")
@click.option("--description", help="Free text.")
@click.option("--metadata", help="JSON object, inline or @file.")
@click.option("--framework", type=click.Choice(FRAMEWORKS), help="Default: from the file (.onnx, .tflite, .keras…).")
@click.option("--preprocessing", help="The v0.7 preprocessing, JSON inline or @file; the flags below override input 0.")
@click.option("--tensor-name", help="Input tensor the image feeds.")
@click.option("--target-size", help="WIDTHxHEIGHT the image is resized to, e.g. 224x224.")
@click.option("--dimension-order", help="NHWC, NCHW, ...")
@click.option("--resize-type", help="SQUASH, CROP, FILL or NETWORK.")
@click.option("--mean-file", help="A mean .npy: a path (uploaded with the model) or a file name inside PATH.")
@click.option("--color-channels", help="RGB, BGR or L.")
@click.option("--pixel-scaling", type=float)
@click.option("--data-type", help="FLOAT32, FLOAT16 or UINT8.")
@click.option("--resampling", help="EXACT for line art and documents (default: the faster JPEG path).")
@click.option("--postprocessings", help="JSON list, inline or @file.")
@click.option("--input-spec", help="JSON list of tensor specs, inline or @file.")
@click.option("--output-spec", help="JSON list of tensor specs, inline or @file.")
@click.option("--conversion-options", help="JSON object (max_abs_diff, opset, signature…), inline or @file.")
@click.option(
    "--file",
    "extra_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another file to send with the model (repeatable).",
)
@click.option("--no-wait", is_flag=True, help="Return once the model is uploaded; do not wait for the deploy.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for the deploy.")
@output_options
@click.pass_obj
def create(
    state: State,
    path: Path,
    name: str | None,
    description: str | None,
    metadata: str | None,
    framework: str | None,
    preprocessing: str | None,
    tensor_name: str | None,
    postprocessings: str | None,
    input_spec: str | None,
    output_spec: str | None,
    conversion_options: str | None,
    extra_files: tuple[Path, ...],
    no_wait: bool,
    timeout: float,
    **image_flags: Any,
) -> None:
    """Register the model at PATH: a SavedModel folder, a .keras/.h5/.tflite/.onnx file, or a .zip/.tar.gz archive.

    Small models go in one request; larger ones by a JSON create and a presigned upload. Then waits for
    the deploy (conversion and parity check) and prints the parity figures.
    """
    extras = list(extra_files)
    spec = _preprocessing(json_value(preprocessing, "--preprocessing"), tensor_name, image_flags, extras, path)
    client, output = state.client, state.output
    with output.upload_bar(f"uploading {path.name}") as progress:
        network = client.networks.create(
            path,
            name=name or _default_name(path),
            description=description,
            metadata=json_value(metadata, "--metadata"),
            framework=framework,
            preprocessing=spec,
            postprocessings=json_value(postprocessings, "--postprocessings"),
            input_spec=json_value(input_spec, "--input-spec"),
            output_spec=json_value(output_spec, "--output-spec"),
            conversion_options=json_value(conversion_options, "--conversion-options"),
            extra_files=extras,
            progress=progress,
            on_stage=progress.stage,
        )
    if output.quiet and not output.as_json:
        click.echo(network.id)
    output.note(f"Created network {network.id} (deploy task {network.task_id}).")
    if no_wait:
        if output.as_json:
            output.json(_wire(network))
        return
    network = _wait(client, output, network.id, timeout)
    _show_deployed(output, network)


@networks.command("list")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--all", "every", is_flag=True, help="Every page.")
@output_options
@click.pass_obj
def list_networks(state: State, offset: int, limit: int, every: bool) -> None:
    """The account's networks, newest last."""
    output = state.output
    if every:
        found = list(state.client.networks.iterate())
        if output.as_json:
            output.json({"count": len(found), "next": None, "previous": None, "results": [_wire(n) for n in found]})
        else:
            output.table(network_rows(found))
        return
    page = state.client.networks.list(offset, limit)
    if output.as_json:
        output.json(page.model_dump(mode="json"))
        return
    output.table(network_rows(page.results))
    shown_to = offset + len(page.results)
    output.line(f"{len(page.results)} of {page.count}" + (f"; next: --offset {shown_to}" if page.next else ""))


@networks.command("get")
@click.argument("network_id")
@output_options
@click.pass_obj
def get(state: State, network_id: str) -> None:
    """One network: its fields, its converted signature and its parity figures."""
    network = state.client.networks.get(network_id)
    if state.output.as_json:
        state.output.json(_wire(network))
        return
    state.output.table(network_details(network))
    parity = parity_table(network.conversion)
    if parity is not None:
        state.output.table(parity)


@networks.command("update")
@click.argument("network_id")
@click.option("--name")
@click.option("--description")
@click.option("--metadata", help="JSON object, inline or @file (replaces the metadata).")
@output_options
@click.pass_obj
def update(state: State, network_id: str, name: str | None, description: str | None, metadata: str | None) -> None:
    """Change the name, description or metadata (nothing else can change)."""
    if name is None and description is None and metadata is None:
        raise click.UsageError("Give at least one of --name, --description or --metadata.")
    network = state.client.networks.update(
        network_id, name=name, description=description, metadata=json_value(metadata, "--metadata")
    )
    if state.output.as_json:
        state.output.json(_wire(network))
    else:
        state.output.table(network_details(network))


@networks.command("delete")
@click.argument("network_ids", nargs=-1, required=True)
@output_options
@click.pass_obj
def delete(state: State, network_ids: tuple[str, ...]) -> None:
    """Delete networks, their files and records."""
    for network_id in network_ids:
        state.client.networks.delete(network_id)
        if state.output.as_json:
            state.output.json({"id": int(network_id) if network_id.isdigit() else network_id, "deleted": True})
        else:
            state.output.line(f"Deleted network {network_id}.")


@networks.command("wait")
@click.argument("network_id")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds.")
@output_options
@click.pass_obj
def wait(state: State, network_id: str, timeout: float) -> None:
    """Wait for the deploy to end: exit 0 when ready, 1 when it failed, 3 on timeout."""
    network = _wait(state.client, state.output, network_id, timeout)
    _show_deployed(state.output, network)


def _wait(client: Client, output: Output, network_id: int | str, timeout: float) -> Network:
    with output.status(f"network {network_id}: pending") as show:
        try:
            return client.networks.wait(
                network_id,
                timeout=timeout,
                on_poll=lambda network, elapsed: show(
                    f"network {network_id}: {network.status}, {elapsed:.0f} s (deploy task {network.task_id})"
                ),
            )
        except WaitTimeout as error:
            last = error.last
            if output.as_json and isinstance(last, Network):
                output.json(_wire(last))
            raise Failed(f"The deploy of network {network_id} had not ended after {timeout:g} s.", TIMEOUT) from None


def _show_deployed(output: Output, network: Network) -> None:
    if output.as_json:
        output.json(_wire(network))
    else:
        output.table(network_details(network))
        parity = parity_table(network.conversion)
        if parity is not None:
            output.table(parity)
    if network.status == "error":
        raise Failed(f"The deploy of network {network.id} failed: {network.error or 'no reason given'}")


def _preprocessing(
    given: Any, tensor_name: str | None, flags: dict[str, Any], extra_files: list[Path], model_path: Path
) -> dict[str, Any] | None:
    """The JSON given, with input 0 completed from the flags; a mean file given as a path is sent too
    (a name found inside the model's folder is that file)."""
    mean_file = flags.get("mean_file")
    inside = model_path.is_dir() and bool(mean_file) and (model_path / str(mean_file)).is_file()
    if mean_file and not inside and Path(mean_file).is_file():
        extra_files.append(Path(mean_file))
        flags = flags | {"mean_file": upload_name(Path(mean_file))}  # the name it is stored under
    image = {IMAGE_FLAGS[key]: value for key, value in flags.items() if value is not None}
    if given is None and not image and tensor_name is None:
        return None
    spec: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    if given is not None and not isinstance(given, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--preprocessing")
    if image or tensor_name is not None:
        inputs = list(spec.get("inputs") or [{}])
        first = dict(inputs[0])
        if tensor_name is not None:
            first["tensor_name"] = tensor_name
        if "tensor_name" not in first:
            raise click.UsageError("--tensor-name is needed: the preprocessing names the input tensor the image feeds.")
        first["image"] = dict(first.get("image") or {}) | image
        spec["inputs"] = [first, *inputs[1:]]
    return spec


def _default_name(path: Path) -> str:
    name = path.resolve().name
    for suffix in (".tar.gz", ".tgz", ".zip", ".keras", ".h5", ".hdf5", ".tflite", ".onnx", ".pt", ".pth", ".pt2"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def _wire(network: Network) -> dict[str, Any]:
    return network.model_dump(mode="json", exclude_none=False, exclude={"upload"})
