"""The local stack's own machinery: handlers invoked side by side, SQS pollers, supervised child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
from tensorgate_local.pollers import QueuePoller
from tensorgate_local.supervisor import ChildProcess, describe_exit
from tensorgate_local.template import QueueSource
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.integration.test_converter import create


def test_gateway_requests_to_different_functions_at_once_each_see_their_own_request(api: Client, aws: Any) -> None:
    from tensorgate_local.gateway import Gateway
    from tensorgate_local.lambdas import LocalFunctions

    # Given one network per account, and the gateway shared by many client threads
    mine = create(api)
    gateway = Gateway(aws["template"], LocalFunctions(aws["functions"]))
    gateway.throttle = None  # the per-key rate limit is tested elsewhere; here every request must pass
    requests = {
        "my network": ("GET", f"/v0.7/networks/{mine['id']}", DEV_KEY, None),
        "my task": ("GET", f"/v0.7/tasks?task_ids={mine['task_id']}", DEV_KEY, None),
        "their list": ("GET", "/v0.7/networks", OTHER_KEY, None),
        "my rename": ("PATCH", f"/v0.7/networks/{mine['id']}", DEV_KEY, {"description": "renamed"}),
    }
    answers: Counter[tuple[str, int]] = Counter()
    wrong: list[str] = []
    lock = threading.Lock()

    def client(name: str) -> None:
        method, path, key, body = requests[name]
        http = Client(gateway)
        for _ in range(15):
            response = http.open(path, method=method, headers={"X-API-KEY": key}, json=body)
            payload = response.json
            with lock:
                answers[(name, response.status_code)] += 1
            if name == "their list" and payload.get("count") != 0:
                wrong.append(f"{name}: another account's networks {payload}")
            if name == "my task" and [task["id"] for task in payload.get("results", [])] != [mine["task_id"]]:
                wrong.append(f"{name}: {payload}")
            if name in ("my network", "my rename") and payload.get("id") != mine["id"]:
                wrong.append(f"{name}: {payload}")

    # When the four kinds of request (three functions, two accounts) arrive at the same time
    threads = [threading.Thread(target=client, args=(name,)) for name in requests for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each was answered from its own request: its body, query string and API key
    assert wrong == []
    assert answers == {(name, 200): 30 for name in requests}


class RecordingSqs:
    def __init__(self) -> None:
        self.receives: list[dict[str, Any]] = []

    def receive_message(self, **arguments: Any) -> dict[str, Any]:
        self.receives.append(arguments)
        return {}


@pytest.mark.parametrize(("setting", "expected"), [("", None), ("6", 6)])
def test_poller_receive_visibility_is_the_queues_own_unless_set(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: int | None
) -> None:
    from tensorgate_local.template import Template

    monkeypatch.setenv("LOCAL_QUEUE_VISIBILITY_SECONDS", setting)
    sqs = RecordingSqs()
    source = QueueSource("Converter", "ConversionQueue", batch_size=1, reports_batch_failures=True)
    poller = QueuePoller(source, Template(), functions=None, sqs=sqs, stop=threading.Event())  # type: ignore[arg-type]
    assert poller.poll_once() == 0
    assert sqs.receives[0].get("VisibilityTimeout") == expected


def test_emulated_queue_deletes_beside_sends_lose_no_message_and_revive_none(aws: Any) -> None:
    # Given one queue, four threads sending and four receiving and deleting at once (as the API and the
    # worker's two completion threads do)
    sqs = aws["session"].client("sqs")
    url = sqs.create_queue(QueueName="race", Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
    sent = [f"{sender}-{number}" for sender in range(4) for number in range(100)]
    received: list[str] = []
    senders_done = threading.Event()

    def send(sender: int) -> None:
        for body in sent[sender * 100 : (sender + 1) * 100]:
            sqs.send_message(QueueUrl=url, MessageBody=body)

    def consume() -> None:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                if senders_done.is_set() and len(set(received)) >= len(sent):
                    return
                if senders_done.is_set() and _queued(sqs, url) == 0:
                    return
                continue
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            received.extend(message["Body"] for message in messages)

    # When they run until the senders are done and the queue is drained
    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for thread in (*senders, *consumers):
        thread.start()
    for thread in senders:
        thread.join()
    senders_done.set()
    for thread in consumers:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a consumer never saw the queue drained"

    # Then every message sent was received, and no deleted message is left in flight
    assert set(received) == set(sent)
    assert _queued(sqs, url) == 0


def _queued(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


# ---- supervised child processes ------------------------------------------------------------------


class Lines:
    """A text stream collecting the supervisor's forwarded lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in list(self.lines)) < count:
            assert time.monotonic() < deadline, f"{text!r} x{count} not in {self.lines}"
            time.sleep(0.02)


def child(code: str, output: Lines) -> ChildProcess:
    return ChildProcess("probe", [sys.executable, "-u", "-c", code], {}, output=output, restart_delay=0.1)  # type: ignore[arg-type]


def test_child_output_is_forwarded_with_its_name_and_a_killed_child_restarts() -> None:
    output = Lines()
    probe = child("import os, time; print('up', os.getpid(), flush=True); time.sleep(60)", output)
    probe.start()
    try:
        output.wait_for("[probe] up")
        first = probe.pid
        assert first is not None
        # When it is killed outright, it is started again (a new process)
        os.kill(first, signal.SIGKILL)
        output.wait_for("[probe] up", count=2)
        assert probe.starts == 2 and probe.pid != first
    finally:
        probe.stop(grace_seconds=5)


def test_child_stop_ends_it_with_sigterm_and_kills_one_that_ignores_it() -> None:
    output = Lines()
    stubborn = child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)",
        output,
    )
    stubborn.start()
    output.wait_for("[probe] ready")
    started = time.monotonic()
    stubborn.stop(grace_seconds=1)
    assert time.monotonic() - started < 5
    assert stubborn.starts == 1  # a child stopped on purpose is not restarted


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"


def test_children_leave_when_the_stack_is_killed_outright(tmp_path: Any) -> None:
    """A `tensorgate-dev` killed with SIGKILL cannot stop its children: they notice and leave by themselves."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pid_file = tmp_path / "child.pid"
    # A parent that starts a child as the stack does (its environment names the parent), then dies at once
    parent = (
        "import subprocess, sys, time; from tensorgate_local.supervisor import child_environment; "
        "child = subprocess.Popen([sys.executable, '-m', 'tensorgate_local.children', 'aws', '--port', "
        f"'{port}'], env=child_environment('.')); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while alive(child_pid):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's exit status waits for whoever adopted it to read it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pool_functions(timeout: int = 30) -> dict[str, Any]:
    from tensorgate_local.template import Function

    return {"Echo": Function("Echo", "tests.integration.pool_functions", "handler", timeout)}


def test_function_pool_events_at_once_run_in_processes_side_by_side(tmp_path: Any) -> None:
    from tensorgate_local.lambdas import LocalFunctions

    # Given a function with a pool of 3 processes
    functions = LocalFunctions(pool_functions(), processes=3)
    try:
        # When 3 events arrive at once, each waiting until 3 events are in hand
        events = [{"action": "together", "together": 3, "folder": str(tmp_path), "number": n} for n in range(3)]
        answers: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda e=e: answers.append(functions.invoke("Echo", e))) for e in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        functions.close()
    # Then they were handled at the same time, in three processes other than this one
    assert [answer["seen"] for answer in answers] == [3, 3, 3]
    assert len({answer["pid"] for answer in answers}) == 3
    assert os.getpid() not in {answer["pid"] for answer in answers}


def test_function_pool_handler_error_fails_the_event_and_keeps_the_process() -> None:
    from tensorgate_local.lambdas import FunctionFailed, LocalFunctions

    functions = LocalFunctions(pool_functions(), processes=1)
    try:
        first = functions.invoke("Echo", {})
        with pytest.raises(FunctionFailed, match="the handler refused this event"):
            functions.invoke("Echo", {"action": "raise"})
        after = functions.invoke("Echo", {})
    finally:
        functions.close()
    assert after["pid"] == first["pid"]
    assert after["function"] == "Echo"


@pytest.mark.parametrize(("action", "timeout", "reason"), [("die", 30, "ended mid-event"), ("hang", 5, "timed out")])
def test_function_pool_process_that_dies_or_times_out_is_replaced(action: str, timeout: int, reason: str) -> None:
    from tensorgate_local.lambdas import FunctionFailed, LocalFunctions

    # Given a pool of one process, which answered once
    functions = LocalFunctions(pool_functions(timeout), processes=1)
    try:
        first = functions.invoke("Echo", {})
        # When its process dies mid-event, or outlives the function's timeout
        with pytest.raises(FunctionFailed, match=reason):
            functions.invoke("Echo", {"action": action})
        # Then the next event is answered by a new process, and the old one is gone
        after = functions.invoke("Echo", {})
    finally:
        functions.close()
    assert after["pid"] != first["pid"]
    assert not alive(first["pid"])


def test_gateway_answers_502_with_a_sentence_when_the_function_fails(aws: Any) -> None:
    from tensorgate_local.gateway import Gateway
    from tensorgate_local.lambdas import FunctionFailed, LocalFunctions

    class Failing(LocalFunctions):
        def invoke(self, name: str, event: dict[str, Any]) -> Any:
            raise FunctionFailed(f"{name}'s process (pid 1) ended mid-event")

    gateway = Gateway(aws["template"], Failing(aws["functions"]))
    response = Client(gateway).get("/v0.7/networks", headers={"X-API-KEY": DEV_KEY})
    assert response.status_code == 502
    assert response.json == {"error": "The service could not answer; retry shortly."}


def test_function_pool_a_handler_that_cannot_be_imported_fails_alone() -> None:
    from tensorgate_local.lambdas import FunctionFailed, LocalFunctions
    from tensorgate_local.template import Function

    # Given two functions, one of whose module raises when imported
    broken = Function("Broken", "tests.integration.pool_broken_function", "handler", 30)
    functions = LocalFunctions(pool_functions() | {"Broken": broken}, processes=1)
    try:
        functions.warm(["Echo", "Broken"])
        # Then its events fail with the import's error, and the other function still answers
        with pytest.raises(FunctionFailed, match="configuration is missing"):
            functions.invoke("Broken", {})
        assert functions.invoke("Echo", {})["function"] == "Echo"
    finally:
        functions.close()
