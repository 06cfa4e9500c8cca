"""`tensorgate endpoints …` (create, predict, shutdown) and `tensorgate jobs …` (submit, watch, download, cancel)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.infer import expand_inputs
from tensorgate_client.cli.output import add_row, summarize_result
from tensorgate_client.errors import WaitTimeout
from tensorgate_client.models import Endpoint, Job

MAX_FEATURES = 16


def target_options(command: Any) -> Any:
    """`--network`, `--version` or `--spec`: the one target of an endpoint or a job."""
    for flag, name, text in (
        ("--spec", "spec_id", "A recognition spec: its current version at each prediction."),
        ("--version", "version_id", "A recognition version: labelled outputs."),
        ("--network", "network_id", "A ready network: tensors."),
    ):
        command = click.option(flag, name, type=int, help=text)(command)
    return command


def one_target(network_id: int | None, version_id: int | None, spec_id: int | None) -> dict[str, Any]:
    given = {
        key: value
        for key, value in (
            ("network_id", network_id),
            ("recognition_version_id", version_id),
            ("recognition_spec_id", spec_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise click.UsageError("Give exactly one of --network, --version or --spec.")
    return given


@cli.group()
def endpoints() -> None:
    """Endpoints: named deployments answering predictions in the same request."""


@endpoints.command("create")
@click.argument("name")
@target_options
@click.option("--replicas", type=click.IntRange(min=0), default=0, show_default=True, help="Workers kept warm.")
@click.option("--gpu", "gpu_required", is_flag=True, help="Served by the GPU worker service.")
@click.option("--description")
@output_options
@click.pass_obj
def create_endpoint(
    state: State,
    name: str,
    network_id: int | None,
    version_id: int | None,
    spec_id: int | None,
    replicas: int,
    gpu_required: bool,
    description: str | None,
) -> None:
    """Create an endpoint NAME on one target."""
    target = one_target(network_id, version_id, spec_id)
    endpoint = state.client.endpoints.create(
        name, replicas=replicas, gpu_required=gpu_required, description=description, **target
    )
    _show_endpoint(state, endpoint)


@endpoints.command("list")
@click.option("--search", help="A part of the name, description or author, any case.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@output_options
@click.pass_obj
def list_endpoints(state: State, search: str | None, offset: int, limit: int) -> None:
    """The account's endpoints."""
    page = state.client.endpoints.list(offset, limit, search=search)
    if state.output.as_json:
        state.output.json(page.model_dump(mode="json"))
        return
    table = Table()
    for column in ("id", "name", "target", "status", "replicas", "device"):
        table.add_column(column, overflow="fold")
    for endpoint in page.results:
        add_row(
            table,
            str(endpoint.id),
            endpoint.name,
            endpoint.target,
            endpoint.status,
            str(endpoint.replicas),
            "gpu" if endpoint.gpu_required else "cpu",
        )
    state.output.table(table)
    state.output.line(f"{len(page.results)} of {page.count}")


@endpoints.command("get")
@click.argument("endpoint")
@output_options
@click.pass_obj
def get_endpoint(state: State, endpoint: str) -> None:
    """One endpoint, by id or by its exact name."""
    _show_endpoint(state, _endpoint(state, endpoint))


@endpoints.command("predict")
@click.argument("endpoint")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--wait", type=click.FloatRange(min=0), help="Seconds the service may wait for the results.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for pending ones.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Labels shown per picture.")
@output_options
@click.pass_obj
def predict(state: State, endpoint: str, inputs: tuple[str, ...], wait: float | None, timeout: float, top: int) -> None:
    """Run pictures (files, folders, globs, URLs; 16 at most) on ENDPOINT (id or name), answered in the same
    request when ready within the service's budget, else followed until they end."""
    sources = expand_inputs(inputs)
    if len(sources) > MAX_FEATURES:
        raise click.UsageError(f"{len(sources)} inputs: a prediction takes {MAX_FEATURES} at most; use a job.")
    client, output = state.client, state.output
    found = _endpoint(state, endpoint)
    images = [source if source.startswith(("http://", "https://", "s3://")) else Path(source) for source in sources]
    started = time.monotonic()
    prediction = client.endpoints.predict(found.id, images, wait=wait)
    tasks = list(prediction.predictions)
    if prediction.status == "pending":
        pending = ", ".join(map(str, prediction.task_ids))
        output.note(f"Not ready within the service's budget: following tasks {pending}.")
        try:
            tasks = [
                client.tasks.wait(task.id, timeout=max(0.0, timeout - (time.monotonic() - started))) for task in tasks
            ]
        except WaitTimeout as error:
            raise Failed(str(error), TIMEOUT) from None
    if output.as_json:
        for source, task in zip(sources, tasks, strict=True):
            output.json(
                {"input": source, "task_id": task.id, "status": task.status, "error": task.error, "data": task.data}
            )
    else:
        table = Table()
        for column in ("input", "task", "status", "result"):
            table.add_column(column, overflow="fold")
        for source, task in zip(sources, tasks, strict=True):
            result = summarize_result(task.data, top) if task.status == "success" else task.error or ""
            add_row(table, source, str(task.id), task.status, result)
        output.table(table)
    failed = [task for task in tasks if task.status == "error"]
    if failed:
        raise Failed(f"{len(failed)} of {len(tasks)} predictions failed: {failed[0].error}")


@endpoints.command("shutdown")
@click.argument("endpoint")
@output_options
@click.pass_obj
def shutdown_endpoint(state: State, endpoint: str) -> None:
    """End predictions (they answer 409) and release the warm workers; the endpoint stays, to read or delete."""
    _show_endpoint(state, state.client.endpoints.shutdown(_endpoint(state, endpoint).id))


@endpoints.command("delete")
@click.argument("endpoints_given", metavar="ENDPOINT...", nargs=-1, required=True)
@output_options
@click.pass_obj
def delete_endpoint(state: State, endpoints_given: tuple[str, ...]) -> None:
    """Delete endpoints (by id or name); their names are free again."""
    for given in endpoints_given:
        endpoint_id = _endpoint(state, given).id
        state.client.endpoints.delete(endpoint_id)
        if state.output.as_json:
            state.output.json({"id": endpoint_id, "deleted": True})
        else:
            state.output.line(f"Deleted endpoint {endpoint_id}.")


def _endpoint(state: State, given: str) -> Endpoint:
    return state.client.endpoints.get(int(given)) if given.isdigit() else state.client.endpoints.lookup(given)


def _show_endpoint(state: State, endpoint: Endpoint) -> None:
    if state.output.as_json:
        state.output.json(endpoint.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", str(endpoint.id)),
        ("name", endpoint.name),
        ("target", endpoint.target),
        ("canary", str(endpoint.canary) if endpoint.canary else "-"),
        ("status", endpoint.status),
        ("replicas", str(endpoint.replicas)),
        ("device", "gpu" if endpoint.gpu_required else "cpu"),
        ("author", endpoint.author or "-"),
    ]
    for title, value in rows:
        add_row(table, title, value)
    state.output.table(table)


@cli.group()
def jobs() -> None:
    """Batch inference jobs over many pictures, results as JSON Lines."""


@jobs.command("submit")
@click.argument("name")
@target_options
@click.option("--endpoint", "endpoint_id", type=int, help="An endpoint: its target.")
@click.option("--url", "urls", multiple=True, help="A picture's http(s) URL (repeatable).")
@click.option(
    "--urls-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A text file of URLs, one per line.",
)
@click.option("--prefix", help="s3://bucket/uploads/<account>/…: every object under it.")
@click.option(
    "--split",
    type=(int, int, str),
    default=None,
    metavar="DATASET_ID SPLIT_ID PART",
    help="A ready dataset split's part: its images, in the part's order.",
)
@click.option(
    "--archive",
    type=click.Path(exists=True, path_type=Path),
    help="A .zip/.tar.gz/.tgz of images, or a folder (zipped into a temporary file): its images in path order.",
)
@click.option("--output-tensor", "output_tensors", multiple=True, help="A tensor to keep (repeatable).")
@click.option("--gpu", "gpu_required", is_flag=True)
@click.option("--description")
@click.option("--watch", is_flag=True, help="Follow the job with a progress bar until it ends.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds, with --watch.")
@output_options
@click.pass_obj
def submit(
    state: State,
    name: str,
    network_id: int | None,
    version_id: int | None,
    spec_id: int | None,
    endpoint_id: int | None,
    urls: tuple[str, ...],
    urls_file: Path | None,
    prefix: str | None,
    split: tuple[int, int, str] | None,
    archive: Path | None,
    output_tensors: tuple[str, ...],
    gpu_required: bool,
    description: str | None,
    watch: bool,
    timeout: float,
) -> None:
    """Submit a job NAME over URLs, an s3:// prefix, an archive or folder of images, or a dataset split's part,
    through one target (or an endpoint)."""
    listed = list(urls)
    if urls_file is not None:
        listed += [line.strip() for line in urls_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if sum((bool(listed), prefix is not None, split is not None, archive is not None)) != 1:
        raise click.UsageError("Give the inputs: --url/--urls-file, --prefix, --archive or --split, one of them.")
    if endpoint_id is not None:
        if any(value is not None for value in (network_id, version_id, spec_id)):
            raise click.UsageError("Give exactly one of --network, --version, --spec or --endpoint.")
        target = {"endpoint_id": endpoint_id}
    else:
        target = one_target(network_id, version_id, spec_id)

    def create(progress: Any = None) -> Job:
        return state.client.jobs.create(
            name,
            urls=listed or None,
            prefix=prefix,
            split=split,
            archive=archive,
            output_tensors=list(output_tensors) or None,
            gpu_required=gpu_required,
            description=description,
            progress=progress,
            network_id=target.get("network_id"),
            recognition_version_id=target.get("recognition_version_id"),
            recognition_spec_id=target.get("recognition_spec_id"),
            endpoint_id=target.get("endpoint_id"),
        )

    if archive is not None:
        with state.output.upload_bar(f"uploading {archive.name}") as bar:
            job = create(bar)
    else:
        job = create()
    if watch:
        job = _watch(state, job, timeout)
    _show_job(state, job)
    _job_exit(job)


@jobs.command("list")
@click.option("--search", help="A part of the name, description or author, any case.")
@click.option("--status", type=click.Choice(["pending", "running", "success", "error", "cancelled"]))
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@output_options
@click.pass_obj
def list_jobs(state: State, search: str | None, status: str | None, offset: int, limit: int) -> None:
    """The account's jobs, oldest first, with their progress."""
    page = state.client.jobs.list(offset, limit, search=search, status=status)
    if state.output.as_json:
        state.output.json(page.model_dump(mode="json"))
        return
    table = Table()
    for column in ("id", "name", "status", "done", "failed", "total", "author"):
        table.add_column(column, overflow="fold")
    for job in page.results:
        add_row(
            table, str(job.id), job.name, job.status, str(job.done), str(job.failed), str(job.total), job.author or ""
        )
    state.output.table(table)
    state.output.line(f"{len(page.results)} of {page.count}")


@jobs.command("get")
@click.argument("job_id", type=int)
@output_options
@click.pass_obj
def get_job(state: State, job_id: int) -> None:
    """A job's status, counters and first errors."""
    _show_job(state, state.client.jobs.get(job_id))


@jobs.command("watch")
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds.")
@output_options
@click.pass_obj
def watch_job(state: State, job_id: int, timeout: float) -> None:
    """Follow a job with a bar of items ended (done and failed) until it ends: exit 0 on success, 1 on error or
    cancel, 3 on timeout."""
    job = _watch(state, state.client.jobs.get(job_id), timeout)
    _show_job(state, job)
    _job_exit(job)


@jobs.command("download")
@click.argument("job_id", type=int)
@click.option(
    "-o",
    "--output",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: job-ID.jsonl).",
)
@output_options
@click.pass_obj
def download(state: State, job_id: int, target: Path | None) -> None:
    """Download an ended job's results: JSON Lines, one line per item in input order."""
    path = target or Path(f"job-{job_id}.jsonl")
    with state.output.upload_bar(f"downloading job {job_id}") as bar:
        written = state.client.jobs.download(job_id, path, progress=bar)
    if state.output.as_json:
        state.output.json({"id": job_id, "file": str(written), "bytes": written.stat().st_size})
    else:
        state.output.line(f"Wrote {written} ({written.stat().st_size} bytes).")


@jobs.command("cancel")
@click.argument("job_id", type=int)
@output_options
@click.pass_obj
def cancel(state: State, job_id: int) -> None:
    """Cancel a job: items not started end as cancelled, running ones finish."""
    _show_job(state, state.client.jobs.cancel(job_id))


def _watch(state: State, job: Job, timeout: float) -> Job:
    with state.output.job_bar(f"job {job.id}") as show:

        def follow(current: Job, elapsed: float) -> None:
            show(current.done, current.failed, current.cancelled, current.total)

        try:
            return state.client.jobs.wait(job.id, timeout=timeout, on_poll=follow)
        except WaitTimeout:
            raise Failed(f"Job {job.id} had not ended after {timeout:g} s.", TIMEOUT) from None


def _show_job(state: State, job: Job) -> None:
    if state.output.as_json:
        state.output.json(job.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    target = next(
        (
            f"{kind} {value}"
            for kind, value in (
                ("endpoint", job.endpoint_id),
                ("version", job.recognition_version_id),
                ("spec", job.recognition_spec_id),
                ("network", job.network_id),
            )
            if value is not None
        ),
        "-",
    )
    rows = [
        ("id", str(job.id)),
        ("name", job.name),
        ("target", target),
        ("status", job.status),
        ("items", f"{job.done} done, {job.failed} failed, {job.cancelled} cancelled of {job.total}"),
    ]
    rows += [(f"error {e.get('index')}", f"{e.get('input')}: {e.get('error')}") for e in job.errors[:5]]
    if job.results_url:
        rows.append(("results", f"tensorgate jobs download {job.id}"))
    for title, value in rows:
        add_row(table, title, value)
    state.output.table(table)


def _job_exit(job: Job) -> None:
    if job.status in ("error", "cancelled"):
        raise Failed(f"Job {job.id} ended {job.status}: {job.failed} of {job.total} items failed.")
