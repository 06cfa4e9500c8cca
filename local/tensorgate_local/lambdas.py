"""Invoking a function of the template in this process, one event at a time per function (as a Lambda container)."""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tensorgate_local.template import Function


@dataclass
class LocalContext:
    """The attributes of a Lambda context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


class LocalFunctions:
    def __init__(self, functions: dict[str, Function]) -> None:
        self._functions = functions
        self._handlers: dict[str, Any] = {}
        # One event at a time in this process, whatever the function: a Lambda container runs one event
        # at a time, and Powertools keeps the event being handled on a class every resolver shares
        # (`BaseRouter.current_event`), so two functions running at once in one process would read each
        # other's request (its body, query and API key). Functions in child processes run beside these.
        self._lock = threading.Lock()
        self._import_lock = threading.Lock()

    def handler(self, name: str) -> Any:
        with self._import_lock:
            if name not in self._handlers:
                function = self._functions[name]
                module = importlib.import_module(function.module)
                self._handlers[name] = getattr(module, function.attribute)
            return self._handlers[name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        handler = self.handler(name)
        context = LocalContext(function_name=name, timeout_seconds=self._functions[name].timeout)
        with self._lock:
            return handler(event, context)
