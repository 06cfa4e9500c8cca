"""Batch inference jobs through `make dev`: 300 images from an s3:// prefix and from an archive, progress, results,
cancel, a killed worker.

The stack runs with the fault tests' short visibility timeouts, so the messages a killed worker held come back
within seconds; the tasks table's stream counts the writes that end each item.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from tensorgate_client import Client

from tests.e2e.conftest import start_stack, stop_stack
from tests.e2e.test_faults import FAULT_ENVIRONMENT, Stack, kill

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ITEMS = 300
FOLDER = "shelves"
JOB_ENDED = ("success", "error", "cancelled")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # More of a job's items held at once than the default 8 (no online traffic here to yield to): the job is quicker.
    running = start_stack(with_workers=True, environment=FAULT_ENVIRONMENT | {"WORKER_BATCH_IN_FLIGHT": "32"})
    stack = Stack(running)
    stack.record_writes("TasksTable")
    yield stack
    stop_stack(running)


@pytest.fixture(scope="module")
def network(stack: Stack) -> dict[str, Any]:
    network = stack.create_network()
    deploy = stack.wait_ended([network["task_id"]])[network["task_id"]]
    assert deploy["status"] == "success", deploy
    return network


def tiny_image(seed: int) -> bytes:
    """An 8×8 JPEG: the job's cost is its items, not their pixels."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images(stack: Stack) -> list[str]:
    """ITEMS images under the dev account's upload prefix, which every job here runs over; in key order."""
    keys = [f"uploads/dev/{FOLDER}/image-{index:04d}.jpg" for index in range(ITEMS)]

    def upload(index: int) -> None:
        stack.s3.put_object(Bucket=stack.bucket, Key=keys[index], Body=tiny_image(index))

    with ThreadPoolExecutor(max_workers=8) as uploads:
        list(uploads.map(upload, range(ITEMS)))
    return [f"s3://{stack.bucket}/{key}" for key in keys]


def create_job(stack: Stack, network_id: int, name: str) -> dict[str, Any]:
    prefix = f"s3://{stack.bucket}/uploads/dev/{FOLDER}/"
    body = {"name": name, "network_id": network_id, "inputs": {"prefix": prefix}}
    reply = requests.post(f"{stack.url}/jobs/", headers=stack.headers(), json=body, timeout=120)
    assert reply.status_code == 201, reply.text
    job = dict(reply.json())
    assert job["status"] == "running" and job["total"] == ITEMS
    return job


def get_job(stack: Stack, job_id: int) -> dict[str, Any]:
    reply = requests.get(f"{stack.url}/jobs/{job_id}/", headers=stack.headers(), timeout=30)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def wait_job(stack: Stack, job_id: int, until: Any, timeout: float = 240) -> tuple[dict[str, Any], list[int]]:
    """The job once `until(job)` holds, and every `done` count seen meanwhile."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(stack, job_id)
        seen.append(job["done"])
        if until(job):
            return job, seen
        time.sleep(0.2)
    lines = "".join(line for line in stack.lines() if "batch network=" not in line)
    pytest.fail(f"job {job_id} did not get there within {timeout} s: {get_job(stack, job_id)}\n{lines[-6000:]}")


def results(job: dict[str, Any]) -> list[dict[str, Any]]:
    assert job["results_url"], job
    reply = requests.get(job["results_url"], timeout=60)
    assert reply.status_code == 200, reply.text
    return [json.loads(line) for line in reply.text.splitlines()]


def test_job_over_an_s3_prefix_reports_progress_and_one_result_line_per_item_in_order(
    stack: Stack, network: dict[str, Any], images: list[str]
) -> None:
    # Given 300 images under the account's upload prefix, when a job runs the network over the prefix
    job = create_job(stack, network["id"], "shelves")
    ended, seen = wait_job(stack, job["id"], lambda job: job["status"] in JOB_ENDED)
    # Then its progress only grew, every item succeeded, and its results hold one line per image in key order
    assert seen == sorted(seen) and seen[-1] == ITEMS
    assert (ended["status"], ended["done"], ended["failed"], ended["cancelled"]) == ("success", ITEMS, 0, 0)
    lines = results(ended)
    assert [line["index"] for line in lines] == list(range(ITEMS))
    assert [line["input"] for line in lines] == images
    assert {line["status"] for line in lines} == {"success"}
    assert all(line["data"]["tensors"][0]["shape"] == [1, 4] for line in lines)
    # And its task is a v0.7 task of kind batch, ended with it
    task = requests.get(f"{stack.url}/tasks/{job['task_id']}/", headers=stack.headers(), timeout=30).json()
    assert (task["kind"], task["status"]) == ("batch", "success")
    assert task["data"] == {"job_id": job["id"], "total": ITEMS, "done": ITEMS, "failed": 0, "cancelled": 0}


def test_job_over_an_uploaded_archive_runs_its_images_in_member_path_order(
    stack: Stack, network: dict[str, Any], tmp_path: Path
) -> None:
    # Given 300 images zipped the way a desktop zips a folder: a top folder, nested folders, clutter
    archive = tmp_path / "aisles.zip"
    members = [f"aisles/aisle-{index % 3}/image-{index:04d}.jpg" for index in range(ITEMS)]
    with zipfile.ZipFile(archive, "w") as bundle:
        for index, member in enumerate(members):
            bundle.writestr(member, tiny_image(index))
        bundle.writestr("aisles/.DS_Store", b"\0")
        bundle.writestr("__MACOSX/aisles/._aisle-0", b"\0")
    # When the client creates a job over it (the archive streamed to the presigned POST the create answers)
    client = Client(stack.url, stack.running.api_key)
    sent: list[int] = []
    job = client.jobs.create(
        "aisles", archive=archive, network_id=network["id"], progress=lambda done, _: sent.append(done)
    )
    assert (job.status, job.total) == ("pending", 0)
    assert sent == sorted(sent) and sent[-1] > archive.stat().st_size  # the whole POST body: its fields, the file
    ended, seen = wait_job(stack, job.id, lambda job: job["status"] in JOB_ENDED)
    # Then its items are the archive's images, run once each, their lines in member path order
    assert (ended["status"], ended["total"], ended["done"], ended["failed"]) == ("success", ITEMS, ITEMS, 0)
    assert ended["inputs"] == {"kind": "archive", "name": "aisles.zip", "count": ITEMS, "ignored": 0}
    assert seen == sorted(seen)
    lines = results(ended)
    assert [line["input"] for line in lines] == sorted(members)
    assert all(line["status"] == "success" and line["data"]["tensors"][0]["shape"] == [1, 4] for line in lines)
    # And the account's jobs find it by name
    assert client.jobs.lookup("aisles").id == job.id
    assert [found.id for found in client.jobs.iterate(search="AISLE")] == [job.id]


def test_job_cancelled_midway_runs_no_item_that_had_not_started(
    stack: Stack, network: dict[str, Any], images: list[str]
) -> None:
    # Given a job under way, its worker paused once a few items ended
    pid = stack.pid("worker")
    job = create_job(stack, network["id"], "cancelled")
    wait_job(stack, job["id"], lambda job: job["done"] >= 10)
    os.kill(pid, signal.SIGSTOP)
    try:
        # When the job is cancelled
        reply = requests.post(f"{stack.url}/jobs/{job['id']}/cancel", headers=stack.headers(), timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "cancelled"
    finally:
        os.kill(pid, signal.SIGCONT)
    ended, _ = wait_job(stack, job["id"], lambda job: job["results_url"] is not None)
    # Then the items it held finished, the rest ended cancelled without running, and every item has its line
    assert ended["status"] == "cancelled"
    assert ended["done"] + ended["failed"] + ended["cancelled"] == ITEMS
    assert ended["cancelled"] >= ITEMS // 2, ended
    lines = results(ended)
    assert [line["index"] for line in lines] == list(range(ITEMS))
    skipped = [line for line in lines if line["status"] == "error"]
    assert len(skipped) == ended["cancelled"] + ended["failed"]
    assert {line["error"] for line in skipped} == {"The job was cancelled before this item ran."}
    # A second cancel is refused with a sentence
    again = requests.post(f"{stack.url}/jobs/{job['id']}/cancel", headers=stack.headers(), timeout=30)
    assert again.status_code == 409 and "cancelled" in again.json()["error"]


def test_worker_killed_mid_job_every_item_is_written_once(
    stack: Stack, network: dict[str, Any], images: list[str]
) -> None:
    # Given a job under way
    mark = len(stack.lines())
    pid = stack.pid("worker")
    job = create_job(stack, network["id"], "killed")
    wait_job(stack, job["id"], lambda job: job["done"] >= 20)
    # When the worker is killed outright while it holds some of the job's items
    kill(pid)
    done_at_kill = get_job(stack, job["id"])["done"]
    stack.wait_for_line(rf"worker \(pid {pid}\) killed by SIGKILL; restarting", after=mark, timeout=30)
    ended, _ = wait_job(stack, job["id"], lambda job: job["status"] in JOB_ENDED)
    # Then the job still ends, each item counted once and its task ended by exactly one write
    assert done_at_kill < ITEMS, "the job ended before the worker was killed"
    assert (ended["status"], ended["done"], ended["failed"]) == ("success", ITEMS, 0)
    item_ids = range(job["task_id"] + 1, job["task_id"] + 1 + ITEMS)
    endings, overwrites = stack.task_writes()
    assert [endings[task_id] for task_id in item_ids] == [1] * ITEMS
    assert sum(overwrites[task_id] for task_id in item_ids) == 0
    assert (endings[job["task_id"]], overwrites[job["task_id"]]) == (1, 0)
    lines = results(ended)
    assert [line["index"] for line in lines] == list(range(ITEMS))
    print(f"worker killed with {done_at_kill} of {ITEMS} items done; every item ended once")
