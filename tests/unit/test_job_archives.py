"""Archive jobs (JobArchives with the dataset worker's real unpacker) and a job's canary split, on in-memory ports."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tensorgate.errors import JobNotRunning, NetworkNotReady
from tensorgate.job_models import JobStatus, takes_canary
from tensorgate.models import Endpoint, NetworkStatus
from tensorgate.services.job_archives import JobArchives, images_of
from tensorgate.services.jobs import JobTargets

from functions.dataset_worker.job_archive import unpack
from tests.unit.test_job_service import NOW, Files, Harness, Recognition

KEY = "job-uploads/acme/{job}/shelves.zip"


class ArchiveFiles(Files):
    def download(self, key: str, path: str) -> None:
        Path(path).write_bytes(self.objects[key])


def archive_of(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for index in reversed(range(count)):
            bundle.writestr(f"shelves/{index:02d}.jpg", f"image {index}".encode())
    return buffer.getvalue()


def archive_harness() -> tuple[Harness, JobArchives, dict[str, Any]]:
    harness = Harness()
    harness.files = files = ArchiveFiles()
    harness.service._files = files
    harness.service.settler._files = files
    job = harness.service.create(
        "acme", {"name": "zip", "network_id": 1, "inputs": {"archive": {"name": "shelves.zip"}}}
    )
    return harness, JobArchives(harness.service, harness.jobs, files, unpack), job


def test_archive_job_redelivered_after_its_starter_died_sends_the_same_items_again_and_reserves_none() -> None:
    # Given an archive job started by a delivery that died before recording its messages as sent
    harness, archives, job = archive_harness()
    key = KEY.format(job=job["id"])
    harness.files.put(key, archive_of(4))
    assert archives.handle_upload(key).startswith("running:")
    first = list(harness.queue.bodies)
    harness.jobs.sent.clear()
    reserved = harness.jobs.next_id
    # When the upload's notification comes again
    outcome = archives.handle_upload(key)
    # Then every item's message is sent again, for the same tasks and stored images; no id is reserved
    assert outcome == f"resent: job {job['id']}'s 4 items"
    assert harness.queue.bodies[len(first) :] == first
    assert harness.jobs.next_id == reserved
    # And a third delivery sends nothing
    assert archives.handle_upload(key) == f"ignored: job {job['id']} is running"
    assert len(harness.queue.bodies) == 8
    # Each item still ends and is counted once, however many messages carried it
    harness.run([harness.outcome(body) for body in harness.queue.bodies])
    ended = harness.service.get("acme", job["id"])
    assert (ended["status"], ended["done"], ended["total"]) == ("success", 4, 4)
    assert [line["input"] for line in harness.lines(job)] == [f"shelves/{index:02d}.jpg" for index in range(4)]


def test_archive_job_started_by_another_delivery_keeps_nothing_of_the_second() -> None:
    # Given two deliveries of one upload that both read the job pending
    harness, archives, job = archive_harness()
    _, pending, _ = harness.jobs.get_job(job["id"]) or (None, None, None)
    assert pending is not None
    keys = [f"inputs/acme/jobs/{job['id']}/{index:05d}" for index in range(2)]
    assert harness.service.start_archive(pending, ["a.jpg", "b.jpg"], keys, 0)
    tasks_before = set(harness.tasks.records)
    # When the second one tries to start it too, it loses and removes its own items
    assert not harness.service.start_archive(pending, ["a.jpg", "b.jpg"], keys, 0)
    assert set(harness.tasks.records) == tasks_before
    assert len(harness.queue.bodies) == 2


def test_archive_job_cancelled_while_pending_ignores_its_archive_and_removes_it() -> None:
    harness, archives, job = archive_harness()
    cancelled = harness.service.cancel("acme", job["id"])
    assert (cancelled["status"], cancelled["error"]) == (
        "cancelled",
        "Cancelled before its archive arrived: no item ran.",
    )
    key = KEY.format(job=job["id"])
    harness.files.put(key, archive_of(3))
    assert archives.handle_upload(key) == f"ignored: job {job['id']} is cancelled"
    assert key not in harness.files.objects and harness.queue.bodies == []
    with pytest.raises(JobNotRunning):
        harness.service.cancel("acme", job["id"])
    assert harness.jobs.progress[job["id"]].status is JobStatus.CANCELLED


def test_archive_job_over_the_item_limit_ends_in_error_with_nothing_stored() -> None:
    harness, archives, job = archive_harness()  # the harness's jobs take at most 10 items
    key = KEY.format(job=job["id"])
    harness.files.put(key, archive_of(11))
    outcome = archives.handle_upload(key)
    assert "holds 11 images, over the 10 one job takes" in outcome
    ended = harness.service.get("acme", job["id"])
    assert ended["status"] == "error" and "split them into several archives" in ended["error"]
    assert [name for name in harness.files.objects if name.startswith("inputs/")] == []
    assert key not in harness.files.objects


def test_images_of_keeps_images_in_path_order_drops_clutter_and_counts_other_files() -> None:
    names = ["b/2.PNG", "a.jpeg", ".DS_Store", "b/.DS_Store", "b/._2.PNG", "Thumbs.db", "notes.md", "b/1.tiff"]
    assert images_of(names) == (["a.jpeg", "b/1.tiff", "b/2.PNG"], 1)


@given(weight=st.floats(min_value=0.001, max_value=0.999), count=st.integers(min_value=0, max_value=500))
def test_takes_canary_gives_the_canary_floor_n_times_weight_of_any_first_n_items(weight: float, count: int) -> None:
    assert sum(takes_canary(index, weight) for index in range(count)) == math.floor(count * weight)


class CanaryEndpoints:
    """Endpoint 7 targets network 1 and sends a quarter of its traffic to network 2."""

    def get(self, account_id: str, endpoint_id: int) -> Endpoint:
        return Endpoint(
            account_id=account_id,
            endpoint_id=7,
            name="shelf",
            author="me",
            target={"network_id": 1},
            canary={"network_id": 2, "weight": 0.25},
            create_date=NOW,
            update_date=NOW,
        )


def test_job_through_an_endpoint_with_a_canary_names_each_items_target_in_its_results_line() -> None:
    harness = Harness()
    candidate = harness.networks.get("acme", 1)
    assert candidate is not None
    harness.networks.put_new(candidate.model_copy(update={"network_id": 2, "name": "candidate"}))
    harness.service._targets = JobTargets(Recognition(), CanaryEndpoints())
    urls = [f"https://images.example.test/{index}.jpg" for index in range(8)]
    job = harness.service.create("acme", {"name": "canary", "endpoint_id": 7, "inputs": {"urls": urls}})
    assert [body["network_id"] for body in harness.queue.bodies] == [1, 1, 1, 2, 1, 1, 1, 2]
    harness.run([harness.outcome(body) for body in harness.queue.bodies])
    targets = [line["target"] for line in harness.lines(job)]
    assert targets == [{"network_id": 2 if index in (3, 7) else 1, "canary": index in (3, 7)} for index in range(8)]


def test_job_through_an_endpoint_whose_canary_network_is_not_ready_is_refused() -> None:
    harness = Harness()
    candidate = harness.networks.get("acme", 1)
    assert candidate is not None
    harness.networks.put_new(candidate.model_copy(update={"network_id": 2, "status": NetworkStatus.PENDING}))
    harness.service._targets = JobTargets(Recognition(), CanaryEndpoints())
    with pytest.raises(NetworkNotReady, match="Network 2 is pending"):
        harness.service.create(
            "acme", {"name": "canary", "endpoint_id": 7, "inputs": {"urls": ["https://a.test/1.jpg"]}}
        )
    assert harness.queue.bodies == [] and harness.tasks.records == {}
