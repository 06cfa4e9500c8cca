"""Datasets (DESIGN §9): create from an uploaded archive, retry, versions by transformation, splits, lookups."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    FIRST_VERSION,
    CreateDataset,
    CreateDatasetEvaluation,
    CreateDatasetSplit,
    CreateDatasetVersion,
    Dataset,
    DatasetEvaluation,
    DatasetKind,
    DatasetSplit,
    DatasetStatus,
    DatasetVersion,
    RetryDataset,
    dataset_wire,
    evaluation_wire,
    item_wire,
    split_wire,
    version_wire,
)
from tensorgate.errors import (
    ConcurrentUpdate,
    DatasetNotFound,
    DatasetNotReady,
    DuplicateName,
    JobNotRunning,
    ValidationFailed,
)
from tensorgate.listing import ListQuery, ListResult, to_page
from tensorgate.messages import RecognitionPlan, StoredSource
from tensorgate.models import NetworkStatus, Page, Task, TaskKind, TaskStatus, utc_now
from tensorgate.ports import IdAllocator, MessageQueue, NetworkRepository, TaskRepository
from tensorgate.schemas import validate
from tensorgate.services.dataset_manifest import decode_lines, iter_chunks, read_page

MAX_LABELS_BYTES = 512 * 1024**2
CANCELLED = "Cancelled on request."


@dataclass(frozen=True)
class DatasetPolicy:
    max_archive_bytes: int = 5 * 1024**3
    presigned_upload_seconds: int = 900
    task_ttl_days: int = 30


class DatasetFiles(Protocol):
    def get(self, key: str) -> bytes: ...
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def presigned_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]: ...
    def presigned_get(self, key: str, expires_in: int) -> str: ...


class EvaluationTargets(Protocol):
    """The network a target runs on, and for a recognition version, spec or endpoint the plan reading it."""

    def resolve(self, account_id: str, target: dict[str, int]) -> tuple[int, RecognitionPlan | None]: ...


class BatchJobCanceller(Protocol):
    def cancel(self, account_id: str, job_id: int) -> Any: ...


class DatasetRepository(Protocol):
    def put_new(self, dataset: Dataset, first_version: DatasetVersion, taken: DuplicateName) -> None: ...
    def get(self, account_id: str, dataset_id: int) -> Dataset | None: ...
    def get_by_name(self, account_id: str, name: str) -> Dataset | None: ...
    def list_datasets(self, account_id: str) -> list[Dataset]: ...
    def replace(self, dataset: Dataset, expected_version: int) -> None: ...
    def delete(self, dataset: Dataset) -> None: ...
    def put_version(self, version: DatasetVersion, taken: DuplicateName) -> None: ...
    def get_version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion | None: ...
    def list_versions(self, account_id: str, dataset_id: int) -> list[DatasetVersion]: ...
    def replace_version(self, version: DatasetVersion, expected_version: int) -> None: ...
    def put_split(self, split: DatasetSplit, taken: DuplicateName) -> None: ...
    def get_split(self, account_id: str, split_id: int) -> DatasetSplit | None: ...
    def get_split_by_name(self, account_id: str, dataset_id: int, version: str, name: str) -> DatasetSplit | None: ...
    def list_splits(self, account_id: str, dataset_id: int) -> list[DatasetSplit]: ...
    def replace_split(self, split: DatasetSplit, expected_version: int) -> None: ...
    def put_evaluation(self, evaluation: DatasetEvaluation) -> None: ...
    def get_evaluation(self, account_id: str, evaluation_id: int) -> DatasetEvaluation | None: ...
    def replace_evaluation(self, evaluation: DatasetEvaluation, expected_version: int) -> None: ...


@dataclass
class Created:
    dataset: Dataset
    upload: dict[str, Any] | None


def _name_taken(what: str, name: str, where: str) -> DuplicateName:
    return DuplicateName(
        f"A {what} named {name!r} already exists {where}; choose another name.",
        [{"field": "name", "message": f"is already taken by another {what}"}],
    )


class DatasetService:
    def __init__(
        self,
        datasets: DatasetRepository,
        tasks: TaskRepository,
        ids: IdAllocator,
        files: DatasetFiles,
        queue: MessageQueue,
        policy: DatasetPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        networks: NetworkRepository | None = None,
        targets: EvaluationTargets | None = None,
        jobs: Callable[[], BatchJobCanceller] | None = None,
    ) -> None:
        self._networks = networks
        self._targets = targets
        self._batch_jobs = jobs
        self._datasets = datasets
        self._tasks = tasks
        self._ids = ids
        self._files = files
        self._queue = queue
        self._policy = policy or DatasetPolicy()
        self._clock = clock

    def _new_task(self, account_id: str, kind: TaskKind, now: datetime) -> Task:
        expires = now + timedelta(days=self._policy.task_ttl_days)
        return Task(
            task_id=self._ids.next_id("task"),
            account_id=account_id,
            kind=kind,
            create_date=now,
            update_date=now,
            expires_at=int(expires.timestamp()),
            data={"progress": {"done": 0, "total": None}},
        )

    def _upload(self, key: str, max_bytes: int) -> dict[str, Any]:
        post = self._files.presigned_post(key, max_bytes, self._policy.presigned_upload_seconds)
        return post | {"key": key, "max_bytes": max_bytes, "expires_in": self._policy.presigned_upload_seconds}

    # -- datasets -------------------------------------------------------------------------------------------

    def create(self, account_id: str, author: str, fields: dict[str, Any]) -> Created:
        request: CreateDataset = validate(CreateDataset, fields, "dataset")
        if not dataset_layout.file_name_ok(request.archive_name, dataset_layout.ARCHIVE_SUFFIXES):
            raise ValidationFailed(
                f"archive_name {request.archive_name[:60]!r} must be a plain file name ending in .zip, .tar.gz or "
                ".tgz.",
                [{"field": "archive_name", "message": "must be a plain file name ending in .zip, .tar.gz or .tgz"}],
            )
        if self._datasets.get_by_name(account_id, request.name) is not None:
            raise _name_taken("dataset", request.name, "in this account")
        now = self._clock()
        dataset_id = self._ids.next_id("dataset")
        task = self._new_task(account_id, TaskKind.DATASET, now)
        dataset = Dataset(
            account_id=account_id,
            dataset_id=dataset_id,
            name=request.name,
            description=request.description,
            author=author,
            kind=request.kind,
            classes=request.classes,
            collection_date=request.collection_date,
            archive_key=dataset_layout.archive_key(account_id, dataset_id, request.archive_name),
            task_id=task.task_id,
            create_date=now,
            update_date=now,
        )
        first = DatasetVersion(
            account_id=account_id,
            dataset_id=dataset_id,
            number=1,
            name=FIRST_VERSION,
            description="The items as extracted.",
            author=author,
            task_id=task.task_id,
            create_date=now,
            update_date=now,
        )
        self._tasks.put_new(task)
        try:
            self._datasets.put_new(dataset, first, _name_taken("dataset", request.name, "in this account"))
        except BaseException:
            self._tasks.delete(task.task_id)
            raise
        return Created(dataset, self._upload(dataset.archive_key, self._policy.max_archive_bytes))

    def list(self, account_id: str, query: ListQuery) -> Page:
        datasets = sorted(self._datasets.list_datasets(account_id), key=lambda dataset: dataset.dataset_id)
        matches = [dataset for dataset in datasets if _matches(dataset, query)]
        return _page(matches, query, lambda dataset: dataset.dataset_id, dataset_wire)

    def get(self, account_id: str, dataset_id: int) -> Dataset:
        dataset = self._datasets.get(account_id, dataset_id)
        if dataset is None:
            raise DatasetNotFound(f"No dataset with id {dataset_id} exists in this account.")
        return dataset

    def lookup(self, account_id: str, name: str) -> Dataset:
        dataset = self._datasets.get_by_name(account_id, name)
        if dataset is None:
            raise DatasetNotFound(f"No dataset of this account is named exactly {name[:200]!r}.")
        return dataset

    def delete(self, account_id: str, dataset_id: int) -> None:
        """Records first, so no job writes under the prefixes afterwards (they end on a missing record)."""
        dataset = self.get(account_id, dataset_id)
        self._datasets.delete(dataset)
        self._files.delete_prefix(dataset_layout.dataset_prefix(account_id, dataset_id))
        self._files.delete_prefix(dataset_layout.upload_prefix(account_id, dataset_id))

    def retry(self, account_id: str, dataset_id: int, fields: dict[str, Any]) -> Created:
        """Extract again (SBrain's `retry_create`): with a corrected label file uploaded to the POST answered, or
        at once from the same archive. Only once the last extraction ended, and before other versions exist."""
        request: RetryDataset = validate(RetryDataset, fields, "retry")
        if request.labels_name is not None and not dataset_layout.file_name_ok(
            request.labels_name, dataset_layout.LABEL_SUFFIXES
        ):
            raise ValidationFailed(
                f"labels_name {request.labels_name[:60]!r} must be a plain file name ending in .csv, .jsonl or .json.",
                [{"field": "labels_name", "message": "must be a plain file name ending in .csv, .jsonl or .json"}],
            )
        dataset = self.get(account_id, dataset_id)
        if dataset.status is DatasetStatus.PENDING:
            raise DatasetNotReady(
                f"Dataset {dataset_id}'s extraction has not ended (task {dataset.task_id}); wait for it, then retry."
            )
        if len(self._datasets.list_versions(account_id, dataset_id)) > 1 or self._datasets.list_splits(
            account_id, dataset_id
        ):
            raise DatasetNotReady(
                f"Dataset {dataset_id} already has versions or splits made from its items; create a new dataset."
            )
        now = self._clock()
        task = self._new_task(account_id, TaskKind.DATASET, now)
        attempt = dataset.attempt + 1
        changes: dict[str, Any] = {
            "status": DatasetStatus.PENDING,
            "attempt": attempt,
            "task_id": task.task_id,
            "error": None,
            "claimed_at": None,
        }
        if request.labels_name is not None:
            changes["labels_key"] = dataset_layout.labels_key(account_id, dataset_id, attempt, request.labels_name)
        if request.classes is not None:
            changes["classes"] = request.classes
        if request.collection_date is not None:
            changes["collection_date"] = request.collection_date
        self._tasks.put_new(task)
        try:
            updated = dataset.model_copy(update=changes | {"update_date": now, "version": dataset.version + 1})
            self._datasets.replace(updated, dataset.version)
        except ConcurrentUpdate:
            self._tasks.delete(task.task_id)
            raise ConcurrentUpdate(f"Dataset {dataset_id} changed meanwhile; retry.") from None
        # The dataset is pending again (no other retry can pass the check above); v1 follows it.
        for _ in range(5):
            first = self._datasets.get_version(account_id, dataset_id, FIRST_VERSION)
            if first is None:
                break
            pending = {"status": DatasetStatus.PENDING, "task_id": task.task_id, "version": first.version + 1}
            try:
                self._datasets.replace_version(first.model_copy(update=pending), first.version)
                break
            except ConcurrentUpdate:
                continue
        if request.labels_name is None:
            self._queue.send(
                {
                    "dataset_job": {
                        "kind": "extract",
                        "account_id": account_id,
                        "dataset_id": dataset_id,
                        "task_id": task.task_id,
                    }
                }
            )
            return Created(updated, None)
        assert updated.labels_key is not None
        return Created(updated, self._upload(updated.labels_key, MAX_LABELS_BYTES))

    def item_errors(self, account_id: str, dataset_id: int, offset: int, limit: int) -> Page:
        dataset = self.get(account_id, dataset_id)
        if dataset.status is DatasetStatus.PENDING or dataset.extraction is None:
            return Page(count=0, offset=offset, limit=limit, results=[])
        errors = decode_lines(self._files.get(dataset_layout.errors_key(account_id, dataset_id, FIRST_VERSION)))
        return Page(count=len(errors), offset=offset, limit=limit, results=errors[offset : offset + limit])

    # -- versions -------------------------------------------------------------------------------------------

    def versions(self, account_id: str, dataset_id: int, query: ListQuery) -> Page:
        """SBrain's `search_versions`: a part of the name, description or author, any case; v1 first."""
        self.get(account_id, dataset_id)
        versions = sorted(self._datasets.list_versions(account_id, dataset_id), key=lambda version: version.number)
        matches = [version for version in versions if _matches(version, query)]
        return _page(matches, query, lambda version: version.number, version_wire)

    def version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion:
        self.get(account_id, dataset_id)
        version = self._datasets.get_version(account_id, dataset_id, name)
        if version is None:
            raise DatasetNotFound(f"Dataset {dataset_id} has no version named {name[:64]!r}.")
        return version

    def create_version(self, account_id: str, author: str, dataset_id: int, fields: dict[str, Any]) -> DatasetVersion:
        request: CreateDatasetVersion = validate(CreateDatasetVersion, fields, "version")
        source = self.version(account_id, dataset_id, request.source)
        if source.status is not DatasetStatus.READY:
            raise DatasetNotReady(f"Version {source.name!r} is {source.status.value}; a transformation needs it ready.")
        now = self._clock()
        existing = self._datasets.list_versions(account_id, dataset_id)
        task = self._new_task(account_id, TaskKind.TRANSFORMATION, now)
        version = DatasetVersion(
            account_id=account_id,
            dataset_id=dataset_id,
            number=max(v.number for v in existing) + 1,
            name=request.name,
            description=request.description,
            author=author,
            source=source.name,
            transformations=[step.model_dump(exclude_none=True) for step in request.transformations],
            task_id=task.task_id,
            create_date=now,
            update_date=now,
        )
        self._tasks.put_new(task)
        try:
            self._datasets.put_version(version, _name_taken("version", request.name, f"in dataset {dataset_id}"))
        except BaseException:
            self._tasks.delete(task.task_id)
            raise
        self._queue.send(
            {
                "dataset_job": {
                    "kind": "transform",
                    "account_id": account_id,
                    "dataset_id": dataset_id,
                    "version": version.name,
                }
            }
        )
        return version

    def items(self, account_id: str, dataset_id: int, name: str, offset: int, limit: int) -> Page:
        version = self.version(account_id, dataset_id, name)
        if version.status is not DatasetStatus.READY:
            raise DatasetNotReady(f"Version {name!r} is {version.status.value}; its items are listed once it is ready.")
        prefix = dataset_layout.version_prefix(account_id, dataset_id, name)
        lines = read_page(self._files, prefix, version.items, offset, limit)
        return Page(count=version.items, offset=offset, limit=limit, results=[item_wire(line) for line in lines])

    # -- splits ---------------------------------------------------------------------------------------------

    def create_split(self, account_id: str, author: str, dataset_id: int, fields: dict[str, Any]) -> DatasetSplit:
        request: CreateDatasetSplit = validate(CreateDatasetSplit, fields, "split")
        dataset = self.get(account_id, dataset_id)
        version = self.version(account_id, dataset_id, request.version)
        if version.status is not DatasetStatus.READY:
            raise DatasetNotReady(f"Version {version.name!r} is {version.status.value}; a split needs it ready.")
        unknown = sorted(set(request.exclude_labels) - set(version.label_counts))
        if unknown:
            raise ValidationFailed(
                f"exclude_labels names {unknown[0]!r}, which no item of version {version.name!r} has.",
                [{"field": "exclude_labels", "message": f"{unknown[0]!r} is not a label of the version"}],
            )
        now = self._clock()
        task = self._new_task(account_id, TaskKind.SPLIT, now)
        split = DatasetSplit(
            account_id=account_id,
            split_id=self._ids.next_id("dataset_split"),
            dataset_id=dataset_id,
            dataset_name=dataset.name,
            version_name=version.name,
            name=request.name,
            description=request.description,
            author=author,
            parts=[part.model_dump() for part in request.parts],
            seed=request.seed,
            stratify=request.stratify,
            exclude_labels=request.exclude_labels,
            task_id=task.task_id,
            create_date=now,
            update_date=now,
        )
        self._tasks.put_new(task)
        try:
            self._datasets.put_split(split, _name_taken("split", request.name, f"for version {version.name!r}"))
        except BaseException:
            self._tasks.delete(task.task_id)
            raise
        self._queue.send(
            {
                "dataset_job": {
                    "kind": "split",
                    "account_id": account_id,
                    "dataset_id": dataset_id,
                    "split_id": split.split_id,
                }
            }
        )
        return split

    def splits(self, account_id: str, dataset_id: int, query: ListQuery) -> Page:
        """SBrain's `search_splits`: a part of the name, description or author, any case; oldest first."""
        self.get(account_id, dataset_id)
        splits = sorted(self._datasets.list_splits(account_id, dataset_id), key=lambda split: split.split_id)
        matches = [split for split in splits if _matches(split, query)]
        return _page(matches, query, lambda split: split.split_id, split_wire)

    def split(self, account_id: str, dataset_id: int, split_id: int) -> DatasetSplit:
        split = self._datasets.get_split(account_id, split_id)
        if split is None or split.dataset_id != dataset_id:
            raise DatasetNotFound(f"Dataset {dataset_id} of this account has no split with id {split_id}.")
        return split

    def lookup_split(self, account_id: str, dataset_name: str, version: str, name: str) -> DatasetSplit:
        """SBrain's `DataSetSplit.lookup(dataset, version, split)`: three exact, case-sensitive names."""
        dataset = self.lookup(account_id, dataset_name)
        split = self._datasets.get_split_by_name(account_id, dataset.dataset_id, version, name)
        if split is None:
            raise DatasetNotFound(
                f"Dataset {dataset_name[:200]!r} has no split named {name[:64]!r} of version {version[:64]!r}."
            )
        return split

    def split_items(self, account_id: str, dataset_id: int, split_id: int, part: str, offset: int, limit: int) -> Page:
        split = self._ready_part(account_id, dataset_id, split_id, part, "part", "its items are listed")
        prefix = dataset_layout.split_part_prefix(account_id, dataset_id, split_id, part)
        lines = read_page(self._files, prefix, split.counts[part], offset, limit)
        return Page(count=split.counts[part], offset=offset, limit=limit, results=[item_wire(line) for line in lines])

    def part_size(self, account_id: str, dataset_id: int, split_id: int, part: str) -> int:
        """The items of a ready split's part (a batch job's input)."""
        split = self._ready_part(account_id, dataset_id, split_id, part, "inputs.split.part", "a job takes it")
        return split.counts[part]

    def _ready_part(
        self, account_id: str, dataset_id: int, split_id: int, part: str, field: str, use: str
    ) -> DatasetSplit:
        """The split, once it is ready and has the part: 409 while it is not ready (saying when `use` can
        happen), 400 on `field` listing the parts."""
        split = self.split(account_id, dataset_id, split_id)
        if split.status is not DatasetStatus.READY:
            raise DatasetNotReady(f"Split {split_id} is {split.status.value}; {use} once it is ready.")
        if part not in split.counts:
            raise ValidationFailed(
                f"Split {split_id} has no part {part[:64]!r}; its parts are {', '.join(split.counts)}.",
                [{"field": field, "message": f"must be one of {', '.join(split.counts)}"}],
            )
        return split

    def part_sources(self, account_id: str, dataset_id: int, split_id: int, part: str) -> Sequence[StoredSource]:
        """A ready split part's images in its order, each a byte range of its version's image shard: a job reads
        them where they are, nothing is copied."""
        total = self.part_size(account_id, dataset_id, split_id, part)
        split = self.split(account_id, dataset_id, split_id)
        images = dataset_layout.version_prefix(account_id, dataset_id, split.version_name)
        prefix = dataset_layout.split_part_prefix(account_id, dataset_id, split_id, part)
        return [
            StoredSource(
                key=dataset_layout.images_chunk_key(images, line["chunk"]), offset=line["offset"], size=line["size"]
            )
            for _, lines in iter_chunks(self._files, prefix, total)
            for line in lines
        ]

    # -- evaluations ----------------------------------------------------------------------------------------

    def create_evaluation(
        self, account_id: str, author: str, dataset_id: int, split_id: int, fields: dict[str, Any]
    ) -> DatasetEvaluation:
        """Everything the scoring needs is checked here: the part, the target's network and, through a recognition
        version, a spec output of the dataset's kind sharing class names with the split's version."""
        request: CreateDatasetEvaluation = validate(CreateDatasetEvaluation, fields, "evaluation")
        dataset = self.get(account_id, dataset_id)
        split = self.split(account_id, dataset_id, split_id)
        if split.status is not DatasetStatus.READY:
            raise DatasetNotReady(f"Split {split_id} is {split.status.value}; an evaluation needs it ready.")
        if request.part not in split.counts or split.counts[request.part] == 0:
            raise ValidationFailed(
                f"Split {split_id} has no items in a part named {request.part!r}; its parts are "
                f"{', '.join(split.counts)}.",
                [{"field": "part", "message": "names no part with items"}],
            )
        (field,) = request.target()
        if self._targets is None:
            raise ValidationFailed(f"An evaluation cannot run through {field} here.")
        network_id, plan = self._targets.resolve(account_id, request.target())
        network = None if self._networks is None else self._networks.get(account_id, network_id)
        if network is None:
            raise ValidationFailed(
                f"No network with id {network_id} exists in this account.",
                [{"field": field, "message": "is not a network of this account"}],
            )
        if network.status is not NetworkStatus.READY:
            raise DatasetNotReady(f"Network {network_id} is {network.status.value}; it must be ready.")
        output_tensor, recognition_output, unnamed = None, None, []
        if plan is None:
            if dataset.kind is DatasetKind.DETECTION:
                raise ValidationFailed(
                    "A detection dataset is evaluated through a recognition version (or a spec or endpoint running "
                    "one) whose post-processing is a detection: a bare network answers tensors, not boxes.",
                    [{"field": field, "message": "answers tensors, not boxes"}],
                )
            outputs = [str(output["name"]) for output in network.outputs or []]
            if request.output_tensor is not None and request.output_tensor not in outputs:
                raise ValidationFailed(
                    f"output_tensor {request.output_tensor!r} is not an output of network {network_id} "
                    f"({', '.join(outputs)}).",
                    [{"field": "output_tensor", "message": "is not an output of the network"}],
                )
            output_tensor = request.output_tensor or (outputs[0] if outputs else None)
        else:
            if request.output_tensor is not None:
                raise ValidationFailed(
                    "output_tensor is for a network target; a recognition version is read by its labels.",
                    [{"field": "output_tensor", "message": "only with network_id"}],
                )
            version = self.version(account_id, dataset_id, split.version_name)
            recognition_output = _recognition_output(plan, dataset.kind, set(version.classes), field)
            named = {str(label["name"]) for label in plan.labels[recognition_output]}
            unnamed = sorted(set(version.classes) - named)
        now = self._clock()
        task = self._new_task(account_id, TaskKind.EVALUATION, now)
        evaluation = DatasetEvaluation(
            account_id=account_id,
            evaluation_id=self._ids.next_id("dataset_evaluation"),
            dataset_id=dataset_id,
            split_id=split_id,
            part=request.part,
            network_id=network_id,
            target=request.target(),
            kind=dataset.kind,
            output_tensor=output_tensor,
            recognition_output=recognition_output,
            classes_without_label=unnamed,
            author=author,
            task_id=task.task_id,
            create_date=now,
            update_date=now,
        )
        self._tasks.put_new(task)
        try:
            self._datasets.put_evaluation(evaluation)
        except BaseException:
            self._tasks.delete(task.task_id)
            raise
        self._queue.send(
            {
                "dataset_job": {
                    "kind": "evaluate",
                    "account_id": account_id,
                    "dataset_id": dataset_id,
                    "evaluation_id": evaluation.evaluation_id,
                }
            }
        )
        return evaluation

    # -- cancelling -----------------------------------------------------------------------------------------

    def cancel_extraction(self, account_id: str, dataset_id: int) -> Dataset:
        """The worker stops at its next chunk and removes what it wrote; `retry` extracts again."""
        self.get(account_id, dataset_id)
        dataset: Dataset = self._cancel(
            lambda: self._datasets.get(account_id, dataset_id),
            self._datasets.replace,
            f"Dataset {dataset_id}'s extraction",
        )
        self._cancel_quietly(
            lambda: self._datasets.get_version(account_id, dataset_id, FIRST_VERSION), self._datasets.replace_version
        )
        return dataset

    def cancel_version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion:
        """A transformation cancelled leaves no item of its version behind (the worker removes what it wrote)."""
        self.version(account_id, dataset_id, name)
        if name == FIRST_VERSION:
            raise ValidationFailed(
                f"{FIRST_VERSION} is made by the extraction: cancel it with POST /v0.7/datasets/{dataset_id}/cancel."
            )
        version: DatasetVersion = self._cancel(
            lambda: self._datasets.get_version(account_id, dataset_id, name),
            self._datasets.replace_version,
            f"Version {name!r}'s transformation",
        )
        return version

    def cancel_evaluation(
        self, account_id: str, dataset_id: int, split_id: int, evaluation_id: int
    ) -> DatasetEvaluation:
        """Its batch job is cancelled too: items not started end as cancelled, nothing is scored."""
        self._evaluation(account_id, dataset_id, split_id, evaluation_id)
        evaluation: DatasetEvaluation = self._cancel(
            lambda: self._datasets.get_evaluation(account_id, evaluation_id),
            self._datasets.replace_evaluation,
            f"Evaluation {evaluation_id}",
        )
        if evaluation.job_id is not None and self._batch_jobs is not None:
            with contextlib.suppress(JobNotRunning):  # it had ended: nothing to stop
                self._batch_jobs().cancel(account_id, evaluation.job_id)
        return evaluation

    def _cancel(self, get: Callable[[], Any], replace: Callable[[Any, int], None], what: str) -> Any:
        """Pending → cancelled once, its task ended once; cancelled again answers the same (idempotent)."""
        for _ in range(5):
            current = get()
            if current is None:
                raise DatasetNotFound(f"{what} is gone.")
            if current.status is DatasetStatus.CANCELLED:
                return current
            if current.status is not DatasetStatus.PENDING:
                raise DatasetNotReady(
                    f"{what} has ended ({current.status.value}): only a pending job can be cancelled."
                )
            now = self._clock()
            cancelled = current.model_copy(
                update={
                    "status": DatasetStatus.CANCELLED,
                    "error": CANCELLED,
                    "update_date": now,
                    "version": current.version + 1,
                }
            )
            try:
                replace(cancelled, current.version)
            except ConcurrentUpdate:
                continue
            task = self._tasks.get(current.task_id)
            if task is not None:
                self._tasks.finish(
                    task.model_copy(update={"status": TaskStatus.ERROR, "error": CANCELLED, "update_date": now})
                )
            return cancelled
        raise ConcurrentUpdate(f"{what} kept changing; retry.")

    def _cancel_quietly(self, get: Callable[[], Any], replace: Callable[[Any, int], None]) -> None:
        with contextlib.suppress(DatasetNotReady, DatasetNotFound, ConcurrentUpdate):
            current = get()
            if current is not None and current.status is DatasetStatus.PENDING:
                replace(
                    current.model_copy(
                        update={"status": DatasetStatus.CANCELLED, "error": CANCELLED, "version": current.version + 1}
                    ),
                    current.version,
                )

    def _evaluation(self, account_id: str, dataset_id: int, split_id: int, evaluation_id: int) -> DatasetEvaluation:
        self.split(account_id, dataset_id, split_id)
        evaluation = self._datasets.get_evaluation(account_id, evaluation_id)
        if evaluation is None or (evaluation.dataset_id, evaluation.split_id) != (dataset_id, split_id):
            raise DatasetNotFound(f"Split {split_id} of dataset {dataset_id} has no evaluation {evaluation_id}.")
        return evaluation

    def evaluation_metrics(self, account_id: str, dataset_id: int, split_id: int, evaluation_id: int) -> dict[str, Any]:
        """SBrain's `get_result_metrics`: the metrics once scored, and the plots as short-lived download URLs."""
        evaluation = self._evaluation(account_id, dataset_id, split_id, evaluation_id)
        prefix = dataset_layout.evaluation_prefix(account_id, dataset_id, evaluation_id)
        urls = {name: self._files.presigned_get(f"{prefix}{name}.png", 3600) for name in evaluation.plots}
        return evaluation_wire(evaluation, urls)


def _recognition_output(plan: RecognitionPlan, kind: DatasetKind, classes: set[str], field: str) -> int:
    """The first spec output whose post-processing is of the dataset's kind and whose labels name one of its
    classes. A class the spec lacks is scored as never predicted; a label the dataset lacks is not scored."""
    wanted = "detection" if kind is DatasetKind.DETECTION else "classification"
    outputs = [index for index, post in enumerate(plan.post_processings) if post.get(wanted) is not None]
    if not outputs:
        raise ValidationFailed(
            f"The recognition version behind {field} has no {wanted} output, and this dataset is a {kind.value} one.",
            [{"field": field, "message": f"has no {wanted} output"}],
        )
    for index in outputs:
        if classes & {str(label["name"]) for label in plan.labels[index]}:
            return index
    names = ", ".join(sorted(str(label["name"]) for label in plan.labels[outputs[0]])[:10])
    raise ValidationFailed(
        f"No label of the recognition version behind {field} ({names}) is a class of the dataset "
        f"({', '.join(sorted(classes)[:10])}); labels and classes are matched by name.",
        [{"field": field, "message": "shares no label name with the dataset's classes"}],
    )


def _matches(record: Dataset | DatasetVersion | DatasetSplit, query: ListQuery) -> bool:
    text = "\n".join((record.name, record.description, record.author)).casefold()
    return (
        (not query.search or query.search.casefold() in text)
        and (not query.name or query.name.casefold() in record.name.casefold())
        and (not query.author or query.author.casefold() in record.author.casefold())
        and (not query.status or query.status == record.status.value)
    )


def _page(matches: list[Any], query: ListQuery, key: Callable[[Any], int], wire: Callable[[Any], Any]) -> Page:
    """Offset or cursor pages of a list read whole: an account's datasets are few (their items are in S3)."""
    after = [item for item in matches if query.cursor is None or key(item) > query.cursor]
    start = 0 if query.cursor is not None else query.offset
    page = after[start : start + query.limit]
    more = len(after) > start + query.limit
    result: ListResult[Any] = ListResult(
        count=len(matches), items=page, last_key=key(page[-1]) if more and page else None
    )
    return to_page(result, query, wire)
