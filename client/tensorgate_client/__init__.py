"""Tensorgate's Python client: networks, tasks and inference over the v0.7 API."""

from __future__ import annotations

__version__ = "0.1.0"

from tensorgate_client.client import Client  # noqa: E402
from tensorgate_client.errors import (  # noqa: E402
    ApiError,
    ConfigurationError,
    ConnectionFailed,
    TaskFailed,
    TensorgateError,
    WaitTimeout,
)
from tensorgate_client.models import Network, NetworkPage, Task  # noqa: E402

__all__ = [
    "ApiError",
    "Client",
    "ConfigurationError",
    "ConnectionFailed",
    "Network",
    "NetworkPage",
    "Task",
    "TaskFailed",
    "TensorgateError",
    "WaitTimeout",
    "__version__",
]
