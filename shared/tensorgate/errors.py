"""Domain errors: plain classes carrying a readable sentence; `http.py` maps them to status codes."""

from __future__ import annotations

from typing import Any


class TensorgateError(Exception):
    """Base of every error a caller can act on."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(TensorgateError):
    """The request is well-formed but its content is invalid."""


class MalformedRequest(TensorgateError):
    """The request body cannot be read at all (bad JSON, broken multipart, ...)."""


class UnknownField(TensorgateError):
    pass


class ImmutableField(TensorgateError):
    pass


class InvalidFileName(TensorgateError):
    pass


class MissingModelFile(TensorgateError):
    pass


class NotAuthenticated(TensorgateError):
    pass


class NetworkNotFound(TensorgateError):
    def __init__(self, network_id: object) -> None:
        super().__init__(f"No network with id {network_id} exists in this account.")


class TaskNotFound(TensorgateError):
    def __init__(self, task_id: object) -> None:
        super().__init__(f"No task with id {task_id} exists in this account.")


class RecognitionSpecNotFound(TensorgateError):
    def __init__(self, spec_id: object) -> None:
        super().__init__(f"No recognition spec with id {spec_id} exists in this account.")


class RecognitionVersionNotFound(TensorgateError):
    def __init__(self, version_id: object) -> None:
        super().__init__(f"No recognition version with id {version_id} exists in this account.")


class EndpointNotFound(TensorgateError):
    def __init__(self, endpoint: object) -> None:
        super().__init__(f"No endpoint with id {endpoint} exists in this account.")


class EndpointShutdown(TensorgateError):
    """A prediction asked of an endpoint that was shut down."""


class TargetGone(TensorgateError):
    """An endpoint's target (or canary) was deleted after the endpoint was created."""


class DuplicateName(TensorgateError):
    """A name that must be unique in the account is already taken."""


def endpoint_name_taken(name: str) -> DuplicateName:
    return DuplicateName(
        f"An endpoint named {name!r} already exists in this account; choose another name, or change or delete "
        "that endpoint (GET /v0.7/endpoints/lookup?name=... finds it).",
        [{"field": "name", "message": "is already taken by another endpoint"}],
    )


class NoCurrentVersion(TensorgateError):
    """A spec asked to infer while it has no current version."""


class RouteNotFound(TensorgateError):
    pass


class PayloadTooLarge(TensorgateError):
    pass


class UnsupportedMediaType(TensorgateError):
    pass


class NetworkNotReady(TensorgateError):
    pass


class ConcurrentUpdate(TensorgateError):
    pass


class DuplicateSlug(TensorgateError):
    pass


class RateLimited(TensorgateError):
    pass


class StorageUnavailable(TensorgateError):
    """A backing service kept failing after retries; the request may be retried later."""


class ConversionRejected(TensorgateError):
    """The uploaded model cannot be served: the deploy task ends `error` with this sentence and details."""

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.report = details or {}


class JobNotFound(TensorgateError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"No job with id {job_id} exists in this account.")


class JobNotRunning(TensorgateError):
    """A cancel asked of a job that already ended."""


class DatasetNotFound(TensorgateError):
    """A dataset, a version of it or a split that this account does not have (404)."""


class DatasetNotReady(TensorgateError):
    """A dataset, version or split asked for what its state does not allow yet (409)."""
