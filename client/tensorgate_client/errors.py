"""What can go wrong talking to Tensorgate, as exceptions carrying the service's own sentence."""

from __future__ import annotations

from typing import Any


class TensorgateError(Exception):
    """Base of every error the client raises."""


class ConfigurationError(TensorgateError):
    """The client cannot be configured: no API URL or key, or an unreadable profile file."""


class ApiError(TensorgateError):
    """The service answered with an error status; `message` is its sentence."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


class ConnectionFailed(TensorgateError):
    """The service could not be reached (refused, reset, DNS, TLS) after the retries."""


class TaskFailed(TensorgateError):
    """A task the client waited for ended `error`; `task` is its last state."""

    def __init__(self, task: Any) -> None:
        super().__init__(f"Task {task.id} ended in error: {task.error or 'no reason given'}")
        self.task = task


class WaitTimeout(TensorgateError):
    """A wait ran past its deadline; `last` is the last state seen."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last
