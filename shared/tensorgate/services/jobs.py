"""Batch inference jobs: create one over many inputs, follow its progress, cancel it, settle it once it ended."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tensorgate_preprocessing.spec import PreprocessingSpec

from tensorgate import layout
from tensorgate.errors import (
    DatasetNotFound,
    EndpointNotFound,
    EndpointShutdown,
    JobNotFound,
    JobNotRunning,
    RecognitionSpecNotFound,
    RecognitionVersionNotFound,
    ValidationFailed,
)
from tensorgate.job_models import MAX_JOB_ERRORS, Job, JobProgress, JobRoute, JobStatus, job_wire
from tensorgate.listing import ListQuery, ListResult, to_page
from tensorgate.messages import InferenceInput, InferenceMessage, RecognitionPlan, StoredSource, UrlSource
from tensorgate.models import Endpoint, EndpointStatus, Page, Task, TaskKind, TaskStatus, utc_now
from tensorgate.ports import NetworkRepository
from tensorgate.schemas import validate
from tensorgate.services.inference import MAX_URL_LENGTH, _check_output_tensors, _require_ready

LARGEST_ID = 10**18 - 1  # ids are at most 18 digits, as in paths
TARGET_FIELDS = ("network_id", "recognition_version_id", "recognition_spec_id", "endpoint_id")
CANCELLED_ITEM = "The job was cancelled before this item ran."


class JobRepository(Protocol):
    def reserve_ids(self, counter: str, count: int) -> int: ...
    def put_items(self, items: Sequence[Task]) -> None: ...
    def delete_items(self, task_ids: Sequence[int]) -> None: ...
    def put_job(self, task: Task, job: Job, status: JobStatus = JobStatus.RUNNING) -> None: ...
    def get_job(self, job_id: int) -> tuple[Task, Job, JobProgress] | None: ...
    def page(self, account_id: str, query: ListQuery) -> ListResult[Job]: ...
    def last_named(self, account_id: str, name: str) -> int | None: ...
    def start(self, job: Job) -> bool: ...
    def fail(self, task: Task, status: JobStatus = JobStatus.ERROR) -> bool: ...
    def fanned_out(self, job_id: int) -> bool: ...
    def mark_fanned_out(self, job_id: int) -> None: ...
    def progress_many(self, job_ids: Iterable[int]) -> dict[int, JobProgress]: ...
    def count_item(self, job_id: int, item_id: int, counter: str) -> bool: ...
    def cancel(self, job_id: int) -> bool: ...
    def settle(
        self, task: Task, expected: JobStatus, status: JobStatus, results_key: str, errors: list[dict[str, Any]]
    ) -> bool: ...
    def get_items(self, task_ids: Iterable[int]) -> list[Task]: ...


class JobFiles(Protocol):
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def presigned_get(self, key: str, expires_in: int) -> str: ...
    def presigned_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]: ...


class TaskEnder(Protocol):
    def finish(self, task: Task) -> bool: ...


class BatchQueue(Protocol):
    def send_many(self, bodies: Sequence[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class JobPolicy:
    bucket: str
    max_items: int = 10_000
    task_ttl_days: int = 30
    results_url_seconds: int = 3600
    max_archive_bytes: int = 5 * 1024**3
    presigned_upload_seconds: int = 900


class JobArchiveInput(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(
        default="images.zip",
        description="The archive's file name (.zip, .tar.gz or .tgz): the answer's `upload` is a presigned POST "
        "for it.",
    )


class JobSplitInput(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    dataset_id: int = Field(ge=1, le=LARGEST_ID)
    split_id: int = Field(ge=1, le=LARGEST_ID)
    part: str = Field(min_length=1, max_length=64, description="The split's part: its images are the items.")


class SplitParts(Protocol):
    """A ready split part's images, in its manifest's order: ranges of the dataset's image shards."""

    def part_sources(self, account_id: str, dataset_id: int, split_id: int, part: str) -> Sequence[StoredSource]: ...
    def part_size(self, account_id: str, dataset_id: int, split_id: int, part: str) -> int: ...


class JobInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    urls: list[str] | None = Field(default=None, min_length=1, description="http(s) URLs of images, one item each.")
    prefix: str | None = Field(
        default=None, description="An s3:// prefix inside your upload prefix: every object under it is an item."
    )
    split: JobSplitInput | None = Field(
        default=None, description="A ready dataset split's part: its images are the items, in the part's order."
    )
    archive: JobArchiveInput | None = Field(
        default=None,
        description="A zip or tar of images uploaded after the create (its `upload`): each image is an item, in "
        "member path order.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> JobInputs:
        if sum(value is not None for value in (self.urls, self.prefix, self.archive, self.split)) != 1:
            raise ValueError("give exactly one of urls, prefix and archive, or a split")
        return self


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    network_id: int | None = Field(
        default=None, ge=1, le=LARGEST_ID, description="Target: a ready network (answers tensors)."
    )
    recognition_version_id: int | None = Field(
        default=None, ge=1, le=LARGEST_ID, description="Target: a recognition version."
    )
    recognition_spec_id: int | None = Field(
        default=None,
        ge=1,
        le=LARGEST_ID,
        description="Target: a recognition spec, through the version current at the job's creation.",
    )
    endpoint_id: int | None = Field(
        default=None, ge=1, le=LARGEST_ID, description="Target: a running endpoint's target."
    )
    output_tensors: list[str] | None = Field(default=None, max_length=64)
    gpu_required: bool = False
    show_discarded: bool = Field(
        default=False,
        description="Through a recognition version: each item's answer also holds the labels (and boxes) under "
        "their thresholds, as an evaluation reads them.",
    )
    inputs: JobInputs

    @model_validator(mode="after")
    def _one_target(self) -> JobRequest:
        if len(self.target()) != 1:
            raise ValueError(f"name exactly one target of {', '.join(TARGET_FIELDS)}")
        return self

    def target(self) -> dict[str, int]:
        return {name: value for name in TARGET_FIELDS if (value := getattr(self, name)) is not None}


class RecognitionPlans(Protocol):
    def version_plan(self, account_id: str, version_id: int) -> tuple[int, RecognitionPlan]: ...
    def spec_plan(self, account_id: str, spec_id: int) -> tuple[int, RecognitionPlan]: ...


class EndpointLookup(Protocol):
    def get(self, account_id: str, endpoint_id: int) -> Endpoint: ...


class JobTargets:
    """What a job's target runs: its network, and for a recognition version or spec how to read the tensors."""

    def __init__(self, recognition: RecognitionPlans | None = None, endpoints: EndpointLookup | None = None) -> None:
        self._recognition = recognition
        self._endpoints = endpoints

    def resolve(self, account_id: str, target: dict[str, int]) -> tuple[int, RecognitionPlan | None]:
        main, _ = self.routes(account_id, target)
        return main.network_id, main.plan

    def routes(self, account_id: str, target: dict[str, int]) -> tuple[JobRoute, JobRoute | None]:
        """The route the items take and, through an endpoint with a traffic split, its canary's (with its weight)."""
        ((name, value),) = target.items()
        if name != "endpoint_id" or self._endpoints is None:
            network_id, plan = self._resolve(account_id, target)
            return JobRoute(target=dict(target), network_id=network_id, plan=plan), None
        try:
            endpoint = self._endpoints.get(account_id, value)
        except EndpointNotFound as missing:
            raise ValidationFailed(
                missing.message, [{"field": name, "message": "names nothing in this account"}]
            ) from None
        if endpoint.status is EndpointStatus.SHUTDOWN:
            raise EndpointShutdown(f"Endpoint {endpoint.name!r} is shut down: a job cannot run through it.")
        network_id, plan = self._resolve(account_id, dict(endpoint.target))
        main = JobRoute(target=dict(endpoint.target), network_id=network_id, plan=plan)
        if endpoint.canary is None:
            return main, None
        chosen = {key: int(item) for key, item in endpoint.canary.items() if key != "weight"}
        network_id, plan = self._resolve(account_id, chosen)
        return main, JobRoute(target=chosen, network_id=network_id, plan=plan, weight=float(endpoint.canary["weight"]))

    def _resolve(self, account_id: str, target: dict[str, int]) -> tuple[int, RecognitionPlan | None]:
        ((name, value),) = target.items()
        try:
            if name == "recognition_version_id" and self._recognition is not None:
                return self._recognition.version_plan(account_id, value)
            if name == "recognition_spec_id" and self._recognition is not None:
                return self._recognition.spec_plan(account_id, value)
        except (RecognitionVersionNotFound, RecognitionSpecNotFound) as missing:
            raise ValidationFailed(
                missing.message, [{"field": name, "message": "names nothing in this account"}]
            ) from None
        if name != "network_id":
            raise ValidationFailed(
                f"A job cannot run through {name} here.", [{"field": name, "message": "unsupported"}]
            )
        return value, None


class JobSettler:
    """Ends a job once every item is counted: its results as JSON Lines in input order, its batch task, once."""

    def __init__(self, jobs: JobRepository, files: JobFiles, clock: Callable[[], datetime] = utc_now) -> None:
        self._jobs = jobs
        self._files = files
        self._clock = clock

    def settle(self, job_ids: Iterable[int]) -> list[int]:
        """Settle those of `job_ids` whose items all ended; returns the ids settled here."""
        settled = []
        for job_id, progress in self._jobs.progress_many(job_ids).items():
            if progress.results_key is not None or progress.status not in (JobStatus.RUNNING, JobStatus.CANCELLED):
                continue
            found = self._jobs.get_job(job_id)
            if found is None:
                continue
            task, job, progress = found
            if progress.ended() < job.total:
                continue
            if self._settle(task, job, progress):
                settled.append(job_id)
        return settled

    def _settle(self, task: Task, job: Job, progress: JobProgress) -> bool:
        items = {
            item.job_index: item
            for item in self._jobs.get_items(range(job.first_item_id, job.first_item_id + job.total))
        }
        inputs = json.loads(self._files.get(layout.job_inputs_key(job.account_id, job.job_id)))
        lines: list[str] = []
        errors: list[dict[str, Any]] = []
        for index, source in enumerate(inputs):
            item = items.get(index)
            line: dict[str, Any] = {"index": index, "input": source}
            if item is not None and item.target is not None:
                line["target"] = item.target  # through an endpoint: the target that served the item
            if item is None:
                line |= {"status": "error", "error": "The item's task is gone."}
            elif item.status is TaskStatus.SUCCESS:
                line |= {"status": "success", "data": item.data}
            else:
                line |= {"status": "error", "error": item.error}
                if len(errors) < MAX_JOB_ERRORS:
                    errors.append({"index": index, "input": source, "error": item.error})
            lines.append(json.dumps(line, separators=(",", ":")))
        key = layout.job_results_key(job.account_id, job.job_id)
        # Written before the job records it: a worker that dies here leaves the job to the next delivery.
        self._files.put(key, ("\n".join(lines) + "\n").encode() if lines else b"", "application/x-ndjson")
        if progress.status is JobStatus.CANCELLED:
            status, error = JobStatus.CANCELLED, f"Cancelled: {progress.done} of {job.total} items ran."
        elif job.total and progress.done == 0:
            status, error = JobStatus.ERROR, f"Every one of the job's {job.total} items failed; see its errors."
        else:
            status, error = JobStatus.SUCCESS, None
        summary = {"job_id": job.job_id, "total": job.total, "done": progress.done, "failed": progress.failed}
        ended = task.model_copy(
            update={
                "status": TaskStatus.ERROR if error else TaskStatus.SUCCESS,
                "error": error,
                "data": summary | {"cancelled": progress.cancelled},
                "update_date": self._clock(),
            }
        )
        return self._jobs.settle(ended, progress.status, status, key, errors)


def item_counter(item: Task) -> str:
    """The job counter an ended item moves."""
    if item.status is TaskStatus.SUCCESS:
        return "done"
    return "cancelled" if item.skipped else "failed"


class JobService:
    def __init__(
        self,
        jobs: JobRepository,
        networks: NetworkRepository,
        files: JobFiles,
        queue: BatchQueue,
        policy: JobPolicy,
        clock: Callable[[], datetime] = utc_now,
        targets: JobTargets | None = None,
        splits: SplitParts | None = None,
    ) -> None:
        self._targets = targets or JobTargets()
        self._splits = splits
        self._jobs = jobs
        self._networks = networks
        self._files = files
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self.settler = JobSettler(jobs, files, clock)

    def create(self, account_id: str, fields: dict[str, Any], author: str | None = None) -> dict[str, Any]:
        """Everything is checked, then the items, the job and the messages are written, in that order. An archive
        job is written `pending`, without items, and answered with the presigned POST its archive goes to."""
        request: JobRequest = validate(JobRequest, fields, "job")
        archive = request.inputs.archive
        if archive is not None:
            if not layout.archive_name_ok(archive.name):
                raise ValidationFailed(
                    f"inputs.archive.name {archive.name[:60]!r} must be a plain file name ending in .zip, .tar.gz or "
                    ".tgz.",
                    [{"field": "inputs.archive.name", "message": "must end in .zip, .tar.gz or .tgz"}],
                )
            sources: list[UrlSource | StoredSource] = []
            described: dict[str, Any] = {"kind": "archive", "name": archive.name, "count": 0}
        else:
            sources, described = self._sources(account_id, request.inputs)
        main, canary = self._targets.routes(account_id, request.target())
        for route in (main, canary):
            if route is not None:
                self._check_network(account_id, route.network_id, request.output_tensors)

        first = self._jobs.reserve_ids("task", len(sources) + 1)
        job_id, now = first, self._clock()
        job = Job(
            account_id=account_id,
            job_id=job_id,
            name=request.name,
            description=request.description,
            network_id=main.network_id,
            target=request.target(),
            output_tensors=request.output_tensors,
            show_discarded=request.show_discarded or None,
            gpu_required=request.gpu_required,
            inputs=described,
            total=len(sources),
            first_item_id=first + 1,
            create_date=now,
            author=author,
            plan=main.plan,
            served=main.target if "endpoint_id" in request.target() else None,
            canary=canary,
        )
        # The job's own record outlives its items' (which expire with every task): lists and counts stay true.
        task = Task(
            task_id=job_id,
            account_id=account_id,
            kind=TaskKind.BATCH,
            network_id=main.network_id,
            create_date=now,
            update_date=now,
        )
        if archive is not None:
            key = layout.job_archive_key(account_id, job_id, archive.name)
            self._jobs.put_job(task, job, JobStatus.PENDING)
            try:
                upload = self._files.presigned_post(
                    key, self._policy.max_archive_bytes, self._policy.presigned_upload_seconds
                )
            except BaseException:
                self._jobs.delete_items([job_id])
                raise
            upload |= {
                "key": key,
                "max_bytes": self._policy.max_archive_bytes,
                "expires_in": self._policy.presigned_upload_seconds,
            }
            return self.get(account_id, job_id) | {"upload": upload}
        items = self._item_tasks(job, now)
        inputs_key = layout.job_inputs_key(account_id, job_id)
        try:
            self._files.put(
                inputs_key, json.dumps([self._describe(source) for source in sources]).encode(), "application/json"
            )
            self._jobs.put_items(items)
            self._jobs.put_job(task, job)
            self._send(job, items, sources, now)
        except BaseException:
            # Messages already sent find their tasks gone: the worker ends them without writing anything.
            self._jobs.delete_items([job_id, *(item.task_id for item in items)])
            self._files.delete_prefix(inputs_key)
            raise
        return self.get(account_id, job_id)

    @property
    def max_items(self) -> int:
        return self._policy.max_items

    def get(self, account_id: str, job_id: int) -> dict[str, Any]:
        found = self._jobs.get_job(job_id)
        if found is None or found[1].account_id != account_id:
            raise JobNotFound(job_id)
        _, job, progress = found
        return self._wire(job, progress)

    def cancel(self, account_id: str, job_id: int) -> dict[str, Any]:
        """Items not started yet end as cancelled when the worker meets them; the ones running finish. A job
        still waiting for its archive ends cancelled at once (an archive arriving later is ignored)."""
        self.get(account_id, job_id)  # another account's job answers as a missing one
        if not self._jobs.cancel(job_id):
            found = self._jobs.get_job(job_id)
            if found is not None and found[2].status is JobStatus.PENDING:
                error = "Cancelled before its archive arrived: no item ran."
                ended = found[0].model_copy(
                    update={"status": TaskStatus.ERROR, "error": error, "update_date": self._clock()}
                )
                if self._jobs.fail(ended, JobStatus.CANCELLED):
                    return self.get(account_id, job_id)
            status = self.get(account_id, job_id)["status"]
            raise JobNotRunning(f"Job {job_id} is {status}: only a pending or running job can be cancelled.")
        self.settler.settle([job_id])  # every item may have ended already
        return self.get(account_id, job_id)

    def list_jobs(self, account_id: str, query: ListQuery) -> Page:
        """A page of the account's jobs, oldest first, each with its progress (one batch read for the page)."""
        result = self._jobs.page(account_id, query)
        progress = self._jobs.progress_many(job.job_id for job in result.items)
        return to_page(result, query, lambda job: self._wire(job, progress.get(job.job_id)))

    def lookup(self, account_id: str, name: str) -> dict[str, Any]:
        """The newest of the account's jobs named exactly `name` (case-sensitive); job names need not be unique."""
        job_id = self._jobs.last_named(account_id, name)
        if job_id is None:
            raise JobNotFound(f"named {name!r}")
        return self.get(account_id, job_id)

    def _wire(self, job: Job, progress: JobProgress | None) -> dict[str, Any]:
        progress = progress or JobProgress(status=JobStatus.PENDING)
        url = progress.results_key and self._files.presigned_get(progress.results_key, self._policy.results_url_seconds)
        return job_wire(job, progress, url or None)

    def _check_network(self, account_id: str, network_id: int, output_tensors: list[str] | None) -> None:
        network = self._networks.get(account_id, network_id)
        if network is None:
            raise ValidationFailed(
                f"No network with id {network_id} exists in this account.",
                [{"field": "network_id", "message": "is not a network of this account"}],
            )
        _require_ready(network)
        declared = network.preprocessing and PreprocessingSpec.model_validate(network.preprocessing)
        if not declared or len(declared.inputs) != 1:
            count = len(declared.inputs) if declared else 0
            raise ValidationFailed(
                f"Network {network_id} takes {count} image inputs; a job runs networks of exactly one image input, "
                "one image per item.",
                [{"field": "network_id", "message": "does not take one image per sample"}],
            )
        _check_output_tensors(network, output_tensors)

    def _item_tasks(self, job: Job, now: datetime) -> list[Task]:
        """One pending task per item; through an endpoint each records the target that serves it."""
        expires = int((now + timedelta(days=self._policy.task_ttl_days)).timestamp())
        items = []
        for index in range(job.total):
            network_id, _, target = job.route(index)
            items.append(
                Task(
                    task_id=job.first_item_id + index,
                    account_id=job.account_id,
                    kind=TaskKind.INFERENCE,
                    network_id=network_id,
                    job_id=job.job_id,
                    job_index=index,
                    endpoint_id=job.target.get("endpoint_id"),
                    target=target,
                    create_date=now,
                    update_date=now,
                    expires_at=expires,
                )
            )
        return items

    def _send(
        self, job: Job, items: Sequence[Task], sources: Sequence[UrlSource | StoredSource], now: datetime
    ) -> None:
        bodies = []
        for item, source in zip(items, sources, strict=True):
            assert item.job_index is not None
            network_id, plan, _ = job.route(item.job_index)
            message = InferenceMessage(
                task_id=item.task_id,
                account_id=job.account_id,
                network_id=network_id,
                inputs=[InferenceInput(source=source)],
                output_tensors=job.output_tensors,
                recognition=plan,
                show_discarded=job.show_discarded,
                submitted_at=now,
                job_id=job.job_id,
            )
            bodies.append(message.model_dump(mode="json"))
        self._queue.send_many(bodies)

    # -- archive jobs: the upload's arrival turns its images into items ------------------------

    def start_archive(self, job: Job, inputs: Sequence[str], keys: Sequence[str], ignored: int) -> bool:
        """A pending archive job's images (`keys`, stored; `inputs`, their member paths) become its items, and
        the job runs. False when another delivery of the upload started it first (nothing of this one is kept)."""
        now = self._clock()
        first = self._jobs.reserve_ids("task", len(keys))
        started = job.model_copy(
            update={
                "total": len(keys),
                "first_item_id": first,
                "inputs": job.inputs | {"count": len(keys), "ignored": ignored},
            }
        )
        items = self._item_tasks(started, now)
        self._files.put(
            layout.job_inputs_key(job.account_id, job.job_id), json.dumps(list(inputs)).encode(), "application/json"
        )
        self._jobs.put_items(items)
        if not self._jobs.start(started):
            self._jobs.delete_items([item.task_id for item in items])
            return False
        self._send(started, items, [StoredSource(key=key) for key in keys], now)
        self._jobs.mark_fanned_out(job.job_id)
        return True

    def resend_archive(self, job: Job) -> None:
        """A started archive job whose messages may not all have been sent (its starter died): send them all;
        an item that ran already is not run again (the worker finds its task ended)."""
        items = self._jobs.get_items(range(job.first_item_id, job.first_item_id + job.total))
        items = sorted(items, key=lambda item: item.job_index or 0)
        keys = [layout.job_item_key(job.account_id, job.job_id, item.job_index or 0) for item in items]
        self._send(job, items, [StoredSource(key=key) for key in keys], self._clock())
        self._jobs.mark_fanned_out(job.job_id)

    def fail_archive(self, task: Task, error: str) -> bool:
        """A pending archive job ends in error with `error`; False when it was not pending."""
        ended = task.model_copy(update={"status": TaskStatus.ERROR, "error": error, "update_date": self._clock()})
        return self._jobs.fail(ended)

    def fail_item(self, task_id: int, error: str, tasks: TaskEnder) -> bool:
        """End a job's item that never completed (its message kept failing); False when it had ended."""
        items = self._jobs.get_items([task_id])
        if not items or items[0].job_id is None:
            return False
        item = items[0]
        ended_here = False
        if item.status is TaskStatus.PENDING:
            item = item.model_copy(update={"status": TaskStatus.ERROR, "error": error, "update_date": self._clock()})
            ended_here = tasks.finish(item)
            if not ended_here:  # ended meanwhile by a worker: count what it wrote
                item = self._jobs.get_items([task_id])[0]
        assert item.job_id is not None
        self._jobs.count_item(item.job_id, item.task_id, item_counter(item))
        self.settler.settle([item.job_id])
        return ended_here

    def _describe(self, source: UrlSource | StoredSource) -> str:
        if isinstance(source, UrlSource):
            return source.url
        if source.offset is not None:  # a split's item: its bytes in the image shard, as an HTTP range names them
            last = source.offset + (source.size or 0) - 1
            return f"s3://{self._policy.bucket}/{source.key}#bytes={source.offset}-{last}"
        return f"s3://{self._policy.bucket}/{source.key}"

    def _split_sources(
        self, account_id: str, split: JobSplitInput
    ) -> tuple[list[UrlSource | StoredSource], dict[str, Any]]:
        """The part's size is checked before its manifest is read: a part over the job limit reads nothing."""
        if self._splits is None:
            raise ValidationFailed("A job cannot take a split as its input here.")
        place = (account_id, split.dataset_id, split.split_id, split.part)
        try:
            size = self._splits.part_size(*place)
            if size > self._policy.max_items:
                raise ValidationFailed(
                    f"Part {split.part!r} of split {split.split_id} has {size} items, over the "
                    f"{self._policy.max_items} one job takes; split it into smaller parts."
                )
            sources: list[UrlSource | StoredSource] = list(self._splits.part_sources(*place))
        except DatasetNotFound as missing:
            raise ValidationFailed(
                missing.message, [{"field": "inputs.split", "message": "names nothing in this account"}]
            ) from None
        described = {"kind": "split", **split.model_dump(), "count": len(sources)}
        return sources, described

    def _sources(self, account_id: str, inputs: JobInputs) -> tuple[list[UrlSource | StoredSource], dict[str, Any]]:
        if inputs.urls is not None:
            sources: list[UrlSource | StoredSource] = []
            for index, url in enumerate(inputs.urls):
                text = url.strip()
                if text.split(":", 1)[0].lower() not in ("http", "https") or len(text) > MAX_URL_LENGTH:
                    raise ValidationFailed(
                        f"inputs.urls[{index}] must be an http(s) URL of at most {MAX_URL_LENGTH} characters.",
                        [{"field": f"inputs.urls[{index}]", "message": "is not an http(s) URL"}],
                    )
                sources.append(UrlSource(url=text))
            described: dict[str, Any] = {"kind": "urls", "count": len(sources)}
        elif inputs.split is not None:
            sources, described = self._split_sources(account_id, inputs.split)
        else:
            assert inputs.prefix is not None
            own = layout.upload_prefix(account_id)
            bucket, _, prefix = inputs.prefix.strip().removeprefix("s3://").partition("/")
            if (
                not inputs.prefix.strip().startswith("s3://")
                or bucket != self._policy.bucket
                or not prefix.startswith(own)
                or ".." in prefix
            ):
                raise ValidationFailed(
                    f"inputs.prefix must be an s3:// prefix under your upload prefix, s3://{self._policy.bucket}/{own}.",
                    [{"field": "inputs.prefix", "message": "is outside your upload prefix"}],
                )
            keys = sorted(key for key in self._files.list_keys(prefix) if not key.endswith("/"))
            sources = [StoredSource(key=key) for key in keys]
            described = {"kind": "prefix", "prefix": f"s3://{bucket}/{prefix}", "count": len(sources)}
        if not sources:
            raise ValidationFailed("The job's inputs name no item: give at least one URL, or a prefix holding objects.")
        if len(sources) > self._policy.max_items:
            raise ValidationFailed(
                f"The job's inputs name {len(sources)} items, over the {self._policy.max_items} one job takes; "
                "split them into several jobs."
            )
        return sources, described
