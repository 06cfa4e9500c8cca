"""One client shared by threads: each thread has its own session, and concurrent inferences all arrive."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tensorgate_client import Client

from tests.unit.client.fakes import Answer, Received, fake_service

KEY = "tg_unit_key_0123456789"


def test_client_gives_each_thread_its_own_session() -> None:
    client = Client("http://127.0.0.1:9", KEY)
    sessions = []
    threads = [threading.Thread(target=lambda: sessions.append(client.transport.session)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(session) for session in sessions}) == 4
    assert client.transport.session is client.transport.session


def test_client_shared_by_threads_sends_every_inference_once(tmp_path: Path) -> None:
    pictures = []
    for index in range(24):
        picture = tmp_path / f"p{index}.png"
        picture.write_bytes(f"picture {index}".encode())
        pictures.append(picture)
    counter = iter(range(1, 1000))
    lock = threading.Lock()

    def route(received: Received) -> Answer:
        with lock:
            return Answer(200, {"task_id": next(counter)})

    with fake_service(route) as service:
        client = Client(service.url, KEY)
        with ThreadPoolExecutor(8) as pool:
            task_ids = list(pool.map(lambda picture: client.networks.infer(3, picture), pictures))

    assert sorted(task_ids) == list(range(1, 25))
    bodies = sorted(received.body for received in service.received)
    assert len(bodies) == 24 and all(b"picture " in body for body in bodies)
    assert len({body.split(b"picture ")[1][:3] for body in bodies}) == 24


def test_client_shared_by_threads_has_their_requests_in_flight_together(tmp_path: Path) -> None:
    # Each inference request is held until 8 are in flight at once: sent one after another, they would break
    # the barrier (a 500 the client does not retry for a POST) instead of passing it.
    together = threading.Barrier(8, timeout=20)
    counter = iter(range(1, 1000))
    lock = threading.Lock()

    def route(received: Received) -> Answer:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return Answer(500, {"error": "The inferences did not arrive together."})
        with lock:
            return Answer(200, {"task_id": next(counter)})

    picture = tmp_path / "picture.png"
    picture.write_bytes(b"picture")
    with fake_service(route) as service:
        client = Client(service.url, KEY)
        with ThreadPoolExecutor(8) as pool:
            task_ids = list(pool.map(lambda _: client.networks.infer(3, picture), range(8)))

    assert sorted(task_ids) == list(range(1, 9))
