"""Ending inference tasks exactly once: results in DynamoDB, or in S3 when over the item size."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from tensorgate import layout
from tensorgate.models import TaskStatus, utc_now
from tensorgate.ports import TaskRepository

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
    ) -> None:
        self._tasks = tasks
        self._results = results
        self._inline_bytes = inline_bytes
        self._clock = clock

    def end(self, outcomes: Sequence[Outcome]) -> set[int]:
        """The task ids that are now over (ended here, earlier, or deleted); errors propagate for a retry."""
        # A duplicate delivery can bring one task twice into a batch; BatchGetItem refuses repeated keys.
        task_ids = list(dict.fromkeys(outcome.task_id for outcome in outcomes))
        found = {task.task_id: task for task in self._tasks.get_many(task_ids)}
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
                update={"status": status, "error": outcome.error, "data": data, "update_date": self._clock()}
            )
            if not self._tasks.finish(finished):
                log.info("task %s had already ended (a duplicate delivery)", task.task_id)
            ended.add(outcome.task_id)
        return ended
