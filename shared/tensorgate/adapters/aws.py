"""boto3 clients, created once per process with standard retries (backoff on throttling)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=30)


@cache
def client(service: str) -> Any:
    # AWS_ENDPOINT_URL (set by the local stack) points every client at the embedded emulation.
    return boto3.session.Session().client(service, config=RETRIES)


def reset_clients() -> None:
    client.cache_clear()


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
