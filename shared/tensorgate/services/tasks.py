"""Reading task status: one task, or several by id, within the caller's account."""

from __future__ import annotations

import json
from typing import Any, Protocol

from tensorgate.errors import TaskNotFound, ValidationFailed
from tensorgate.models import Page, Task
from tensorgate.ports import TaskRepository

MAX_TASK_IDS = 100


class ResultReader(Protocol):
    def get(self, key: str) -> bytes: ...


class TaskService:
    def __init__(self, tasks: TaskRepository, results: ResultReader | None = None) -> None:
        self._tasks = tasks
        self._results = results

    def _inline(self, task: Task) -> Task:
        """Results over DynamoDB's item size live in S3; the API answers with them in place."""
        data: Any = task.data
        if self._results is not None and isinstance(data, dict) and set(data) == {"result_key"}:
            return task.model_copy(update={"data": json.loads(self._results.get(str(data["result_key"])))})
        return task

    def get(self, account_id: str, task_id: int) -> Task:
        task = self._tasks.get(task_id)
        # Another account's task answers exactly like a missing one.
        if task is None or task.account_id != account_id:
            raise TaskNotFound(task_id)
        return self._inline(task)

    def list(self, account_id: str, task_ids: list[int], offset: int, limit: int) -> Page:
        if not task_ids:
            raise ValidationFailed(
                "List tasks by id: add task_ids=1&task_ids=2 (or task_ids=1,2) to the query.",
                [{"field": "task_ids", "message": "is required"}],
            )
        unique = list(dict.fromkeys(task_ids))
        if len(unique) > MAX_TASK_IDS:
            raise ValidationFailed(f"At most {MAX_TASK_IDS} task ids can be asked at once; {len(unique)} were.")
        found = {task.task_id: task for task in self._tasks.get_many(unique) if task.account_id == account_id}
        ordered = [self._inline(found[task_id]).to_wire() for task_id in unique if task_id in found]
        return Page(count=len(ordered), offset=offset, limit=limit, results=ordered[offset : offset + limit])
