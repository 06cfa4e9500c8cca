"""The local stack's child processes, supervised as ECS supervises tasks: output forwarded, restarted when they die."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

log = logging.getLogger("local")
_output_lock = threading.Lock()


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


class ChildProcess:
    """One supervised process: its lines go to `output` prefixed with its name; when it dies it is started again.

    A process that keeps dying waits longer before each restart (1 s doubling to 30 s), as ECS does for
    a task that fails to stay up; one that ran a while restarts after a second.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        environment: dict[str, str],
        cwd: str | None = None,
        output: IO[str] | None = None,
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        restart: bool = True,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.environment = environment
        self.cwd = cwd
        self.starts = 0
        self._output = output or sys.stdout
        self._restart_delay = restart_delay
        self._restart = restart
        self._max_restart_delay = max_restart_delay
        self._stopping = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"supervise-{name}", daemon=True)

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=10)

    def terminate(self) -> None:
        """Ask the process to finish (SIGTERM, as ECS and Lambda do) and stop restarting it."""
        self._stopping.set()
        self._signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait until `deadline` (time.monotonic) for the process to end, then kill it."""
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop in time; killing it", self.name, process.pid)
                self._signal(signal.SIGKILL)
                process.wait()
        self._thread.join(timeout=5)

    def stop(self, grace_seconds: float = 8.0) -> None:
        self.terminate()
        self.wait(time.monotonic() + grace_seconds)

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                process.send_signal(signum)

    def _supervise(self) -> None:
        quick_deaths = 0  # deaths in a row, each within 30 s of its start
        while not self._stopping.is_set():
            began = time.monotonic()
            process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                # Its own session: a Ctrl-C in the terminal reaches the stack alone, which then stops
                # its children in order (and does not restart one that saw the signal first).
                start_new_session=True,
            )
            self._process = process
            self.starts += 1
            log.info("%s started (pid %d)", self.name, process.pid)
            self._started.set()
            if self._stopping.is_set():  # stopped while starting: the terminate() signal may have missed it
                self._signal(signal.SIGTERM)
            self._forward(process)
            status = process.wait()
            if self._stopping.is_set():
                log.info("%s (pid %d) stopped: %s", self.name, process.pid, describe_exit(status))
                return
            if not self._restart:
                log.error("%s (pid %d) %s; it is not restarted", self.name, process.pid, describe_exit(status))
                return
            quick_deaths = 0 if time.monotonic() - began > 30 else quick_deaths + 1
            wait = min(self._restart_delay * 2 ** max(0, quick_deaths - 1), self._max_restart_delay)
            log.warning("%s (pid %d) %s; restarting it in %.0f s", self.name, process.pid, describe_exit(status), wait)
            self._stopping.wait(wait)

    def _forward(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        prefix = f"[{self.name}] "
        for line in process.stdout:
            with _output_lock:
                self._output.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
                self._output.flush()


def stop_all(children: Sequence[ChildProcess], grace_seconds: float) -> None:
    """SIGTERM every child at once, then wait for them together; kill what is left at the deadline."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_seconds
    for child in children:
        child.wait(deadline)


def child_environment(code_root: str) -> dict[str, str]:
    """This process's environment (the embedded AWS endpoint, the functions' variables) for a child."""
    environment = dict(os.environ)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = code_root if not path else f"{code_root}{os.pathsep}{path}"
    environment["PYTHONUNBUFFERED"] = "1"
    environment["TENSORGATE_LOCAL_PARENT_PID"] = str(os.getpid())  # see children.watch_parent
    return environment
