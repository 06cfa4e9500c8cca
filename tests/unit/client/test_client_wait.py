"""Waiting: polls with a growing interval, ends at the deadline with the last state, never sleeps past it."""

from __future__ import annotations

import pytest
import responses
from tensorgate_client import Client, TaskFailed, WaitTimeout

from tests.unit.client.fakes import network_body, task_body

URL = "http://tensorgate.test/v0.7"


class FakeClock:
    """Time that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> Client:
    return Client("http://tensorgate.test", "tg_unit_key_0123456789", sleep=clock.sleep, clock=clock)


@responses.activate
def test_task_wait_polls_until_the_task_ends_with_a_growing_interval(client: Client, clock: FakeClock) -> None:
    for _ in range(3):
        responses.get(f"{URL}/tasks/5/", json=task_body(5))
    responses.get(f"{URL}/tasks/5/", json=task_body(5, "success", data={"tensors": []}))

    task = client.tasks.wait(5, poll=1.0)

    assert task.status == "success" and task.data == {"tensors": []}
    assert clock.sleeps == [1.0, 1.5, 2.25]


@responses.activate
def test_task_wait_past_its_timeout_raises_with_the_last_state(client: Client, clock: FakeClock) -> None:
    responses.get(f"{URL}/tasks/5/", json=task_body(5))

    with pytest.raises(WaitTimeout, match="task 5 to end after 10 s") as raised:
        client.tasks.wait(5, timeout=10, poll=1.0)

    assert raised.value.last.status == "pending"
    assert sum(clock.sleeps) == pytest.approx(10.0)  # the last sleep is cut to the deadline
    assert max(clock.sleeps) <= 10.0


@responses.activate
def test_task_wait_interval_stops_growing_at_ten_seconds(client: Client, clock: FakeClock) -> None:
    responses.get(f"{URL}/tasks/5/", json=task_body(5))

    with pytest.raises(WaitTimeout):
        client.tasks.wait(5, timeout=120, poll=2.0)

    assert max(clock.sleeps) == 10.0


@responses.activate
def test_task_wait_can_raise_when_the_task_ends_in_error(client: Client) -> None:
    responses.get(f"{URL}/tasks/5/", json=task_body(5, "error", error="The image could not be decoded."))

    with pytest.raises(TaskFailed, match="Task 5 ended in error: The image could not be decoded."):
        client.tasks.wait(5, raise_on_error=True)
    assert client.tasks.wait(5).error == "The image could not be decoded."


@responses.activate
def test_network_wait_ends_on_ready_or_error_and_reports_each_poll(client: Client) -> None:
    responses.get(f"{URL}/networks/2/", json=network_body(2))
    responses.get(f"{URL}/networks/2/", json=network_body(2, "error", error="No model file in the archive."))
    seen: list[str] = []

    network = client.networks.wait(2, on_poll=lambda current, elapsed: seen.append(current.status))

    assert network.status == "error" and network.error == "No model file in the archive."
    assert seen == ["pending", "error"]


@responses.activate
def test_tasks_get_many_asks_in_chunks_of_a_hundred_and_keeps_the_order(client: Client) -> None:
    ids = list(range(1, 151))

    def page(request: object) -> tuple[int, dict[str, str], str]:
        import json
        from urllib.parse import parse_qs, urlparse

        asked = [int(value) for value in parse_qs(urlparse(request.url).query)["task_ids"][0].split(",")]  # type: ignore[attr-defined]
        body = {"count": len(asked), "next": None, "previous": None, "results": [task_body(i) for i in reversed(asked)]}
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{URL}/tasks/", callback=page)

    found = client.tasks.get_many(ids)

    assert [task.id for task in found] == ids and len(responses.calls) == 2
