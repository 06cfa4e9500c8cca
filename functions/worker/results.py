"""Ending inference tasks exactly once: results in DynamoDB, or in S3 when over the item size."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tensorgate import layout
from tensorgate.models import Task, TaskStatus, utc_now
from tensorgate.ports import TaskRepository
from tensorgate.services.jobs import JobRepository, JobSettler, item_counter

from functions.worker.pipeline import Outcome

log = logging.getLogger("inference_worker")


class ResultStore(Protocol):
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...


class TaskResults:
    """Writes outcomes with the repository's conditional `finish`, so a redelivered message never writes twice."""

    def __init__(
        self,
        tasks: TaskRepository,
        results: ResultStore,
        inline_bytes: int,
        clock: Callable[[], datetime] = utc_now,
        jobs: JobRepository | None = None,
        settler: JobSettler | None = None,
    ) -> None:
        self._tasks = tasks
        self._results = results
        self._inline_bytes = inline_bytes
        self._clock = clock
        self._jobs = jobs
        self._settler = settler

    def end(self, outcomes: Sequence[Outcome], stored: Mapping[int, Task] | None = None) -> set[int]:
        """The task ids that are now over (ended here, earlier, or deleted); errors propagate for a retry.

        `stored` holds tasks as their messages carried them (pending, as the API wrote them): those are
        ended from that copy without a read; the conditional write refuses it if they ended meanwhile."""
        # A duplicate delivery can bring one task twice into a batch; BatchGetItem refuses repeated keys.
        task_ids = list(dict.fromkeys(outcome.task_id for outcome in outcomes))
        found = {task_id: task for task_id, task in (stored or {}).items() if task_id in task_ids}
        unread = [task_id for task_id in task_ids if task_id not in found]
        if unread:
            found |= {task.task_id: task for task in self._tasks.get_many(unread)}
        ended: set[int] = set()
        for outcome in outcomes:
            task = found.get(outcome.task_id)
            if task is None or task.status is not TaskStatus.PENDING:
                # Deleted with its network, or ended by an earlier delivery: nothing left to write.
                ended.add(outcome.task_id)
                continue
            data = outcome.data
            if data is not None:
                body = json.dumps(data, separators=(",", ":")).encode()
                if len(body) > self._inline_bytes:
                    key = layout.result_key(task.account_id, task.task_id)
                    self._results.put(key, body, "application/json")
                    data = {"result_key": key}
            status = TaskStatus.ERROR if outcome.error is not None else TaskStatus.SUCCESS
            finished = task.model_copy(
                update={
                    "status": status,
                    "error": outcome.error,
                    "data": data,
                    "update_date": self._clock(),
                    "skipped": outcome.skipped or None,
                }
            )
            if self._tasks.finish(finished):
                found[task.task_id] = finished
            else:
                log.info("task %s had already ended (a duplicate delivery) or was deleted", task.task_id)
                found.pop(task.task_id)  # what the other delivery wrote is read again below
            ended.add(outcome.task_id)
        if self._jobs is not None:
            self._count_job_items(found, [task_id for task_id in task_ids if task_id not in found])
        return ended

    def _count_job_items(self, known: dict[int, Task], unknown: list[int]) -> None:
        """Count the jobs' items that ended (here, or by a delivery that died before counting them), then
        settle the jobs whose last item that was. `known` holds tasks as they are now stored."""
        assert self._jobs is not None
        items = [task for task in known.values() if task.job_id is not None]
        if unknown:
            items += [task for task in self._tasks.get_many(unknown) if task.job_id is not None]
        for item in items:
            if item.job_id is not None and item.status is not TaskStatus.PENDING:
                self._jobs.count_item(item.job_id, item.task_id, item_counter(item))
        jobs = {item.job_id for item in items if item.job_id is not None}
        if jobs and self._settler is not None:
            self._settler.settle(sorted(jobs))
