"""A batch job's archive of images: once uploaded, its images become the job's items, or the job ends in error."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Protocol

from tensorgate import layout
from tensorgate.job_models import JobStatus
from tensorgate.models import Task
from tensorgate.services.jobs import JobRepository, JobService

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# What desktops leave in a folder people zip: never an item, never counted as ignored.
CLUTTER = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
# Items read from the archive, then stored in parallel, at a time.
STORE_CHUNK = 64
STORE_THREADS = 8


class ArchiveRejected(Exception):
    """The archive cannot be read safely (the model archives' refusals); `message` is one sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArchiveMembers(Protocol):
    """An archive's regular files by clean relative path (`photos/cat.jpg`), sorted."""

    names: list[str]

    def read(self, name: str) -> bytes: ...
    def close(self) -> None: ...


# (archive on disk, a scratch directory) → its members; raises ArchiveRejected.
Unpacker = Callable[[Path, Path], ArchiveMembers]


class ArchiveFiles(Protocol):
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...
    def download(self, key: str, path: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...


def images_of(names: list[str]) -> tuple[list[str], int]:
    """The members that are images, in path order, and how many other files were left out (clutter aside)."""
    images: list[str] = []
    ignored = 0
    for name in sorted(names):
        base = PurePosixPath(name).name
        if base.lower() in CLUTTER or base.startswith("._"):
            continue
        if base.lower().endswith(IMAGE_SUFFIXES):
            images.append(name)
        else:
            ignored += 1
    return images, ignored


class JobArchives:
    """Turns an uploaded archive into its job's items, once.

    The images are stored one object each under the account's inputs (deterministic keys: a second run
    overwrites), their member paths as the job's inputs, then `JobService.start_archive` writes the items and
    moves the job from pending to running with a condition only one delivery meets, and sends their messages.
    A delivery that finds the job running but its messages not all sent (its starter died) sends them again."""

    def __init__(self, service: JobService, jobs: JobRepository, files: ArchiveFiles, unpack: Unpacker) -> None:
        self._service = service
        self._jobs = jobs
        self._files = files
        self._unpack = unpack
        self._max_items = service.max_items

    def handle_upload(self, key: str) -> str:
        parsed = layout.parse_job_archive_key(key)
        if parsed is None:
            return "ignored: not a job archive"
        account, job_id, name = parsed
        found = self._jobs.get_job(job_id)
        if found is None or layout.safe_account(found[1].account_id) != account or found[1].inputs.get("name") != name:
            return f"ignored: no job {job_id} awaits {name!r}"
        task, job, progress = found
        if progress.status is JobStatus.RUNNING and job.inputs.get("kind") == "archive":
            if self._jobs.fanned_out(job_id):
                return f"ignored: job {job_id} is running"
            self._service.resend_archive(job)
            return f"resent: job {job_id}'s {job.total} items"
        if progress.status is not JobStatus.PENDING:
            self._files.delete_prefix(key)  # cancelled before it arrived, or ended: the archive has no use
            return f"ignored: job {job_id} is {progress.status.value}"

        items_prefix = layout.job_items_prefix(job.account_id, job_id)
        with tempfile.TemporaryDirectory(prefix="job-archive-") as scratch:
            archive = Path(scratch) / name
            self._files.download(key, str(archive))
            try:
                members = self._unpack(archive, Path(scratch) / "members")
            except ArchiveRejected as rejected:
                return self._fail(task, job_id, key, items_prefix, rejected.message)
            try:
                images, ignored = images_of(members.names)
                if not images:
                    return self._fail(
                        task,
                        job_id,
                        key,
                        items_prefix,
                        f"The archive {name!r} holds no image (files ending in "
                        f"{', '.join(IMAGE_SUFFIXES)}); nothing to run.",
                    )
                if len(images) > self._max_items:
                    return self._fail(
                        task,
                        job_id,
                        key,
                        items_prefix,
                        f"The archive {name!r} holds {len(images)} images, over the {self._max_items} one job "
                        "takes; split them into several archives.",
                    )
                keys = [layout.job_item_key(job.account_id, job_id, index) for index in range(len(images))]
                self._store(members, images, keys)
            except ArchiveRejected as rejected:
                return self._fail(task, job_id, key, items_prefix, rejected.message)
            except BaseException:
                self._files.delete_prefix(items_prefix)
                raise
            finally:
                members.close()
        if not self._service.start_archive(job, images, keys, ignored):
            return f"ignored: job {job_id} was started by another delivery"
        self._files.delete_prefix(key)
        return f"running: job {job_id} with {len(images)} items ({ignored} other files left out)"

    def _store(self, members: ArchiveMembers, images: list[str], keys: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=STORE_THREADS) as pool:
            for start in range(0, len(images), STORE_CHUNK):
                stop = min(start + STORE_CHUNK, len(images))
                chunk = [(keys[index], members.read(images[index])) for index in range(start, stop)]
                list(pool.map(lambda pair: self._files.put(*pair), chunk))

    def _fail(self, task: Task, job_id: int, key: str, items_prefix: str, message: str) -> str:
        """Nothing of the job's items is kept; the job and its task end in error with the sentence."""
        self._files.delete_prefix(items_prefix)
        self._service.fail_archive(task, message)
        self._files.delete_prefix(key)
        return f"error: job {job_id}: {message}"

    def give_up(self, key: str, message: str) -> None:
        """The upload's last delivery failed: its pending job ends in error rather than waiting forever."""
        parsed = layout.parse_job_archive_key(key)
        found = None if parsed is None else self._jobs.get_job(parsed[1])
        if found is None or found[2].status is not JobStatus.PENDING:
            return
        assert parsed is not None
        self._fail(found[0], parsed[1], key, layout.job_items_prefix(found[1].account_id, parsed[1]), message)
