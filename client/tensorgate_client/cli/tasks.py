"""`tensorgate tasks get|wait`."""

from __future__ import annotations

import time

import click

from tensorgate_client.cli import TIMEOUT, Failed, State, cli, output_options
from tensorgate_client.cli.output import parity_table, summarize_result, task_rows
from tensorgate_client.errors import WaitTimeout
from tensorgate_client.models import Task


@cli.group()
def tasks() -> None:
    """Deploy and inference tasks."""


@tasks.command("get")
@click.argument("task_ids", nargs=-1, required=True, type=int)
@output_options
@click.pass_obj
def get(state: State, task_ids: tuple[int, ...]) -> None:
    """Tasks by id: a table, or with --json one JSON document per task (JSON Lines)."""
    found = [state.client.tasks.get(task_ids[0])] if len(task_ids) == 1 else state.client.tasks.get_many(task_ids)
    missing = sorted(set(task_ids) - {task.id for task in found})
    _show(state, found)
    if missing:
        raise Failed(f"No task {', '.join(map(str, missing))} in this account.")


@tasks.command("wait")
@click.argument("task_ids", nargs=-1, required=True, type=int)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds, for all of them.")
@output_options
@click.pass_obj
def wait(state: State, task_ids: tuple[int, ...], timeout: float) -> None:
    """Wait for tasks to end: exit 0 when all succeeded, 1 when one ended in error, 3 on timeout."""
    output = state.output
    ended: list[Task] = []
    deadline = time.monotonic() + timeout
    with output.status(f"waiting for {len(task_ids)} task(s)") as show:
        for task_id in task_ids:
            try:
                ended.append(
                    state.client.tasks.wait(
                        task_id,
                        timeout=max(0.0, deadline - time.monotonic()),
                        on_poll=lambda task, elapsed: show(f"task {task.id}: {task.status}, {elapsed:.0f} s"),
                    )
                )
            except WaitTimeout as error:
                _show(state, ended + ([error.last] if isinstance(error.last, Task) else []))
                raise Failed(f"Task {task_id} had not ended after {timeout:g} s.", TIMEOUT) from None
    _show(state, ended)
    failed = [task for task in ended if task.status == "error"]
    if failed:
        raise Failed("; ".join(f"task {task.id} ended in error: {task.error or 'no reason given'}" for task in failed))


def _show(state: State, found: list[Task]) -> None:
    if state.output.as_json:
        for task in found:
            state.output.json(task.model_dump(mode="json"))
    else:
        state.output.table(task_rows(found))
        for task in found:
            if task.status != "success" or not state.output.for_people:
                continue
            if task.kind == "deploy":
                parity = parity_table(task.data)
                if parity is not None:
                    state.output.line(f"task {task.id}: {task.data.get('format')} converted to ONNX")
                    state.output.table(parity)
            else:
                state.output.line(f"task {task.id}: " + summarize_result(task.data).replace("\n", "; "))
