"""Invoking a function of the template: in this process one event at a time, or in a pool of processes per function.

A Lambda container runs one event at a time, and Lambda runs as many containers side by side as events
arrive (up to the account's concurrency). Powertools keeps the event being handled on a class every
resolver shares (`BaseRouter.current_event`), so two events in one process would read each other's
request: in-process invocation is serialised, and concurrency comes from processes, as Lambda's does.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tensorgate_local.template import Function

log = logging.getLogger("local")
# How many processes each function may run at once in `make dev` (Lambda's concurrent containers).
PROCESSES_VARIABLE = "LOCAL_FUNCTION_PROCESSES"
DEFAULT_PROCESSES = 4
# Modules the pool's processes are forked with already imported: a new container starts in milliseconds
# and shares these pages with its siblings instead of holding a copy of botocore and pydantic each.
# The fork server imports `tensorgate_local.prewarm` only: it imports these modules and the handlers named in
# PRELOAD_VARIABLE, each failure left to the process that serves that function (the fork server dies on any
# error other than an ImportError in a module it imports itself, which would take every function down).
PRELOADED = ("boto3", "botocore.session", "pydantic", "aws_lambda_powertools.event_handler", "tensorgate.wiring")
PREWARM = "tensorgate_local.prewarm"
PRELOAD_VARIABLE = "TENSORGATE_LOCAL_PRELOAD"


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


class FunctionFailed(Exception):
    """An invocation that returned no result: the handler raised, timed out, or its process died."""


def processes_per_function() -> int:
    """LOCAL_FUNCTION_PROCESSES: processes per function (0: every event in the stack's own process, in turn)."""
    value = os.environ.get(PROCESSES_VARIABLE, "").strip()
    return int(value) if value else DEFAULT_PROCESSES


class LocalFunctions:
    """The template's functions, each invoked in this process (one event at a time) or in a pool of processes."""

    def __init__(self, functions: dict[str, Function], processes: int = 0) -> None:
        self._functions = functions
        self._handlers: dict[str, Any] = {}
        # In this process one event at a time, whatever the function (see the module's docstring).
        self._lock = threading.Lock()
        self._import_lock = threading.Lock()
        self._processes = processes
        self._pools: dict[str, _Pool] = {}
        self._pools_lock = threading.Lock()
        self._context: Any = None
        self._preload: list[str] = list(PRELOADED)  # then the handlers `warm` names

    @property
    def processes(self) -> int:
        return self._processes

    def handler(self, name: str) -> Any:
        with self._import_lock:
            if name not in self._handlers:
                function = self._functions[name]
                module = importlib.import_module(function.module)
                self._handlers[name] = getattr(module, function.attribute)
            return self._handlers[name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        if self._processes > 0:
            return self._pool(name).invoke(event)
        handler = self.handler(name)
        context = LocalContext(function_name=name, timeout_seconds=self._functions[name].timeout)
        with self._lock:
            return handler(event, context)

    def warm(self, names: list[str]) -> None:
        """Start one process for each of `names` now (in the background), as provisioned concurrency does.

        The first call also names the handler modules the fork server imports before forking any process.
        """
        if self._processes <= 0:
            return
        with self._pools_lock:
            if self._context is None:
                self._preload += sorted({self._functions[name].module for name in names})
        for name in names:
            threading.Thread(target=self._pool(name).warm, name=f"warm-{name}", daemon=True).start()

    def close(self) -> None:
        with self._pools_lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def _pool(self, name: str) -> _Pool:
        with self._pools_lock:
            if name not in self._pools:
                if self._context is None:
                    # A fork server forked before any thread of this process could hold a lock: the stack's
                    # threads (gateway, pollers) make a plain fork unsafe; spawning would re-import everything.
                    self._context = multiprocessing.get_context("forkserver")
                    os.environ[PRELOAD_VARIABLE] = ",".join(self._preload)  # the fork server inherits it
                    # `__main__` too: each process forked from the server would otherwise run the stack's own
                    # script again (multiprocessing's spawn preparation), some 0.4 s of imports per new process.
                    self._context.set_forkserver_preload(["__main__", PREWARM])
                self._pools[name] = _Pool(self._context, name, self._functions[name], self._processes)
            return self._pools[name]


class _Process:
    """One container: a process that imported the handler and answers events sent over its pipe, in turn."""

    def __init__(self, context: Any, name: str, function: Function) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(name, function.module, function.attribute, function.timeout, child),
            name=f"lambda-{name}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.broken = False  # its pipe failed or its event timed out: it takes no more events

    @property
    def alive(self) -> bool:
        return not self.broken and bool(self.process.is_alive())

    def invoke(self, event: dict[str, Any], timeout: float) -> Any:
        try:
            self.connection.send(event)
            if not self.connection.poll(timeout):
                self.broken = True
                self.stop()  # Lambda ends a container whose event outlived the function's timeout
                raise FunctionFailed(f"timed out after {timeout:.0f} s")
            outcome, value = self.connection.recv()
        except (EOFError, OSError):
            self.broken = True
            raise FunctionFailed(f"its process (pid {self.process.pid}) ended mid-event") from None
        if outcome == "error":
            raise FunctionFailed(value)
        return value

    def stop(self) -> None:
        self.connection.close()  # the process reads end of file and returns
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)


class _Pool:
    """Up to `size` processes of one function: an event goes to an idle one, or to a new one while under `size`."""

    def __init__(self, context: Any, name: str, function: Function, size: int) -> None:
        self._context = context
        self._name = name
        self._function = function
        self._size = size
        self._idle: list[_Process] = []
        self._busy: list[_Process] = []
        self._starting = 0
        self._condition = threading.Condition()

    def _acquire(self) -> _Process:
        with self._condition:
            while not self._idle and len(self._busy) + self._starting >= self._size:
                self._condition.wait()
            if self._idle:
                process = self._idle.pop()
                self._busy.append(process)
                return process
            self._starting += 1
        try:
            process = _Process(self._context, self._name, self._function)
        finally:
            with self._condition:
                self._starting -= 1
                self._condition.notify()
        with self._condition:
            self._busy.append(process)
            count = len(self._busy) + len(self._idle)
        log.info("%s: process %d of %d started (pid %s)", self._name, count, self._size, process.process.pid)
        return process

    def _release(self, process: _Process) -> None:
        alive = process.alive
        with self._condition:
            if process not in self._busy:  # the pool was closed meanwhile
                return
            self._busy.remove(process)
            if alive:
                self._idle.append(process)
            self._condition.notify()
        if not alive:
            process.stop()

    def warm(self) -> None:
        self._release(self._acquire())

    def invoke(self, event: dict[str, Any]) -> Any:
        process = self._acquire()
        try:
            return process.invoke(event, float(self._function.timeout))
        except FunctionFailed as failure:
            raise FunctionFailed(f"{self._name} failed: {failure}") from None
        finally:
            self._release(process)

    def close(self) -> None:
        with self._condition:
            processes = self._busy + self._idle
            self._busy, self._idle = [], []
        for process in processes:
            process.stop()


def _serve(name: str, module: str, attribute: str, timeout: int, connection: Connection) -> None:
    """A pool process's loop: import the handler once, then answer one event at a time until the pipe closes."""
    try:
        handler = getattr(importlib.import_module(module), attribute)
        failure = None
    except Exception:
        # As Lambda's Runtime.ImportModuleError: every event of this function fails with the import's error.
        handler, failure = None, traceback.format_exc()
    gc.freeze()  # what the fork server imported stays shared with the siblings: the collector leaves it alone
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return
        context = LocalContext(function_name=name, timeout_seconds=timeout)
        try:
            answer: tuple[str, Any] = ("error", failure) if handler is None else ("ok", handler(event, context))
        except Exception:
            answer = ("error", traceback.format_exc())
        try:
            connection.send(answer)
        except (BrokenPipeError, OSError):
            return
