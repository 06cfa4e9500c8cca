"""DynamoDB repository for batch jobs: the job on its batch task's item, its items as tasks, counted once each."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.adapters.dynamodb import BATCH_GET_LIMIT, DynamoTaskRepository, _from_item, _to_item, _unavailable
from tensorgate.adapters.listing import PartitionLister
from tensorgate.errors import StorageUnavailable
from tensorgate.job_models import Job, JobProgress, JobStatus
from tensorgate.listing import ListQuery, ListResult
from tensorgate.models import Task

BATCH_WRITE_LIMIT = 25
COUNTERS = ("done", "failed", "cancelled")
# The tasks table's index of jobs by account (template.yaml), and the partition a job's record gives itself there.
JOBS_INDEX = "JobsByAccount"
JOBS_PARTITION = "#jobs"
PROGRESS = "task_id, job_status, done, failed, cancelled, results_key, job_errors, job_error"


class DynamoJobRepository:
    """A job lives on its batch task's item in the tasks table: the task's document, the job's (`job`), and
    top-level counters (`done`, `failed`, `cancelled`) and `job_status` that conditional updates move.

    An item's task ends with the conditional write every task ends with (pending → ended, once), then is
    counted on its job with a conditional update that records its id: whoever comes back to an ended item
    (a redelivery, the next worker after a crash between the two writes) counts it at most once more, and
    only if it was not counted."""

    def __init__(self, tasks_table: str, counters_table: str, dynamodb: Any | None = None) -> None:
        self._table = tasks_table
        self._counters = counters_table
        self._db = dynamodb or client("dynamodb")
        self._tasks = DynamoTaskRepository(tasks_table, self._db)
        self._lister = PartitionLister(
            tasks_table,
            self._db,
            "jobs",
            counters_table,
            index=JOBS_INDEX,
            partition_key="job_account",
            sort_key="task_id",
            document="job",
            status="job_status",
        )

    def reserve_ids(self, counter: str, count: int) -> int:
        """`count` consecutive ids from the counter every task id comes from; returns the first."""
        try:
            response = self._db.update_item(
                TableName=self._counters,
                Key=_to_item({"name": counter}),
                UpdateExpression="ADD #value :count",
                ExpressionAttributeNames={"#value": "value"},
                ExpressionAttributeValues=_to_item({":count": count}),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            raise _unavailable(error, "allocate ids") from None
        return int(_from_item(response["Attributes"])["value"]) - count + 1

    def put_items(self, items: Sequence[Task]) -> None:
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            requests = [
                {"PutRequest": {"Item": self._tasks._item(item)}} for item in items[start : start + BATCH_WRITE_LIMIT]
            ]
            self._write_batch(requests)

    def delete_items(self, task_ids: Sequence[int]) -> None:
        for start in range(0, len(task_ids), BATCH_WRITE_LIMIT):
            chunk = task_ids[start : start + BATCH_WRITE_LIMIT]
            self._write_batch([{"DeleteRequest": {"Key": _to_item({"task_id": task_id})}} for task_id in chunk])

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: requests}
        for attempt in range(8):
            try:
                response = self._db.batch_write_item(RequestItems=pending)
            except ClientError as error:
                raise _unavailable(error, "store the job's items") from None
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(0.05 * 2**attempt)  # throttled: back off as the SDKs do
        raise StorageUnavailable("The service could not store the job's items right now; retry shortly.")

    def put_job(self, task: Task, job: Job, status: JobStatus = JobStatus.RUNNING) -> None:
        """The job's record, listed under its account (`job_account`, with the attributes searches read), and
        the account's count of jobs moved in the same transaction."""
        partition = job.account_id + JOBS_PARTITION
        indexed = PartitionLister.index_attributes(job.name, job.description, job.author, status.value)
        del indexed["status"]  # a task's own `status` attribute; the job's is `job_status`
        item = self._tasks._item(task) | _to_item(
            {
                "job": job.model_dump_json(),
                "job_status": status.value,
                "job_account": partition,
                **indexed,
                **dict.fromkeys(COUNTERS, 0),
            }
        )
        put = {"Put": {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(task_id)"}}
        try:
            self._db.transact_write_items(TransactItems=[put, self._lister.count_change(partition, +1)])
        except ClientError as error:
            raise _unavailable(error, "store the job") from None

    def page(self, account_id: str, query: ListQuery) -> ListResult[Job]:
        """A page of the account's jobs, oldest first (their progress is read with `progress_many`)."""
        return self._lister.page(account_id + JOBS_PARTITION, query).parsed(Job.model_validate_json)

    def last_named(self, account_id: str, name: str) -> int | None:
        """The newest of the account's jobs named exactly `name`."""
        return self._lister.last_named(account_id + JOBS_PARTITION, name)

    def start(self, job: Job) -> bool:
        """pending → running with the items an archive gave (`total`, `first_item_id`, `inputs`); False when
        the job was not pending (another delivery of the upload started it, or it ended)."""
        return self._move(job.job_id, JobStatus.PENDING, {"job": job.model_dump_json(), "job_status": "running"})

    def mark_fanned_out(self, job_id: int) -> None:
        """Every item's message was sent: a later delivery of the same upload sends nothing again."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_to_item({"task_id": job_id}),
                UpdateExpression="SET fanned_out = :yes",
                ExpressionAttributeValues=_to_item({":yes": True}),
            )
        except ClientError as error:
            raise _unavailable(error, "update the job") from None

    def fanned_out(self, job_id: int) -> bool:
        try:
            response = self._db.get_item(
                TableName=self._table,
                Key=_to_item({"task_id": job_id}),
                ConsistentRead=True,
                ProjectionExpression="fanned_out",
            )
        except ClientError as error:
            raise _unavailable(error, "read the job") from None
        return bool(_from_item(response.get("Item") or {}).get("fanned_out"))

    def fail(self, task: Task, status: JobStatus = JobStatus.ERROR) -> bool:
        """pending → error (or cancelled), with the sentence on the job and its batch task; False when it was not
        pending."""
        values = {
            "job_status": status.value,
            "job_error": task.error,
            "document": task.model_dump_json(),
            "status": task.status.value,
        }
        return self._move(task.task_id, JobStatus.PENDING, values)

    def get_job(self, job_id: int) -> tuple[Task, Job, JobProgress] | None:
        try:
            response = self._db.get_item(TableName=self._table, Key=_to_item({"task_id": job_id}), ConsistentRead=True)
        except ClientError as error:
            raise _unavailable(error, "read the job") from None
        item = response.get("Item")
        if item is None or "job" not in item:
            return None
        values = _from_item(item)
        task = Task.model_validate_json(values["document"])
        return task, Job.model_validate_json(values["job"]), _progress(values, task.update_date)

    def progress_many(self, job_ids: Iterable[int]) -> dict[int, JobProgress]:
        """The jobs' counters and status (one BatchGetItem per hundred jobs)."""
        ids = list(dict.fromkeys(job_ids))
        found: dict[int, JobProgress] = {}
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [_to_item({"task_id": job_id}) for job_id in ids[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                    "ProjectionExpression": PROGRESS,
                }
            }
            try:
                while request:
                    response = self._db.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        values = _from_item(item)
                        if "job_status" in values:
                            found[int(values["task_id"])] = _progress(values, None)
                    request = response.get("UnprocessedKeys") or {}
            except ClientError as error:
                raise _unavailable(error, "read the jobs' progress") from None
        return found

    def count_item(self, job_id: int, item_id: int, counter: str) -> bool:
        """Count an ended item on its job once: False when it was counted already (or the job is gone).

        The job keeps the ids it counted (a number set): counting again, after a redelivery or a worker that
        died between ending the item and counting it, changes nothing."""
        assert counter in COUNTERS
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_to_item({"task_id": job_id}),
                UpdateExpression="ADD #counter :one, counted :item",
                ConditionExpression="attribute_exists(job_status) AND NOT contains(counted, :id)",
                ExpressionAttributeNames={"#counter": counter},
                ExpressionAttributeValues=_to_item({":one": 1, ":item": {item_id}, ":id": item_id}),
            )
            return True
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise _unavailable(error, "count the job's item") from None

    def cancel(self, job_id: int) -> bool:
        """running → cancelled; False when the job was not running."""
        return self._move(job_id, JobStatus.RUNNING, {"job_status": JobStatus.CANCELLED.value})

    def settle(
        self, task: Task, expected: JobStatus, status: JobStatus, results_key: str, errors: list[dict[str, Any]]
    ) -> bool:
        """Record the job's end and its batch task's, once: False when another worker settled it first."""
        values = {
            "job_status": status.value,
            "results_key": results_key,
            "job_errors": json.dumps(errors),
            **({"job_error": task.error} if task.error else {}),
            "document": task.model_dump_json(),
            "status": task.status.value,
        }
        return self._move(task.task_id, expected, values, require_no_results=True)

    def _move(self, job_id: int, expected: JobStatus, values: dict[str, Any], require_no_results: bool = False) -> bool:
        names = {f"#{name}": name for name in values} | {"#job_status": "job_status"}
        condition = "#job_status = :expected" + (" AND attribute_not_exists(results_key)" if require_no_results else "")
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_to_item({"task_id": job_id}),
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item({f":{name}": value for name, value in values.items()})
                | _to_item({":expected": expected.value}),
            )
            return True
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise _unavailable(error, "update the job") from None

    def get_items(self, task_ids: Iterable[int]) -> list[Task]:
        return self._tasks.get_many(task_ids)


def _progress(values: dict[str, Any], updated: datetime | None) -> JobProgress:
    errors = json.loads(values["job_errors"]) if values.get("job_errors") else []
    return JobProgress(
        status=JobStatus(values["job_status"]),
        done=int(values.get("done", 0)),
        failed=int(values.get("failed", 0)),
        cancelled=int(values.get("cancelled", 0)),
        results_key=values.get("results_key"),
        errors=tuple(errors),
        error=values.get("job_error"),
        update_date=updated,
    )
