"""Endpoints through the gateway emulation, under moto: records, lookup, search, predict (DESIGN §8)."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.integration.test_inference_api import IMAGE, ready_network
from tests.integration.test_recognition_api import create_spec, create_version

HEADERS = {"X-API-KEY": DEV_KEY}
SOURCE = base64.b64encode(IMAGE).decode()


def create_endpoint(api: Client, status: int = 201, **fields: Any) -> Any:
    response = api.post("/v0.7/endpoints/", headers=HEADERS, json={"name": "pets", **fields})
    assert response.status_code == status, response.text
    return response.json


def finish_queued_tasks(aws: dict[str, Any], count: int, seconds: float = 20) -> threading.Thread:
    """A worker's part: take `count` messages off the inference queue and end their tasks with a result."""
    from tensorgate import wiring
    from tensorgate.models import TaskStatus

    sqs = aws["session"].client("sqs")
    url = sqs.get_queue_url(QueueName="InferenceQueue")["QueueUrl"]
    tasks = wiring.task_repository()

    def work() -> None:
        done = 0
        deadline = time.monotonic() + seconds
        while done < count and time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                body = json.loads(message["Body"])
                task = tasks.get(body["task_id"])
                assert task is not None
                result = {"tensors": [{"name": "probabilities", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
                tasks.finish(task.model_copy(update={"status": TaskStatus.SUCCESS, "data": result}))
                done += 1

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# -- records ----------------------------------------------------------------------------------


def test_create_endpoint_answers_its_fields_and_get_and_lookup_find_it(api: Client) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"], description="Pets in photos", replicas=2)
    assert isinstance(endpoint["id"], int) and endpoint["status"] == "running"
    assert endpoint["network_id"] == network["id"] and endpoint["recognition_version_id"] is None
    assert endpoint["replicas"] == 2 and endpoint["gpu_required"] is False and endpoint["author"] == "dev"
    assert api.get(f"/v0.7/endpoints/{endpoint['id']}/", headers=HEADERS).json == endpoint
    assert api.get("/v0.7/endpoints/lookup?name=pets", headers=HEADERS).json == endpoint
    # Lookup is exact and case-sensitive.
    assert api.get("/v0.7/endpoints/lookup?name=Pets", headers=HEADERS).status_code == 404
    assert api.get("/v0.7/endpoints/lookup?name=pet", headers=HEADERS).status_code == 404


def test_create_endpoint_with_a_taken_name_answers_400_naming_it(api: Client) -> None:
    network = ready_network(api)
    create_endpoint(api, network_id=network["id"])
    refused = create_endpoint(api, status=400, network_id=network["id"])
    assert "'pets'" in refused["error"] and refused["details"][0]["field"] == "name"
    assert api.get("/v0.7/endpoints", headers=HEADERS).json["count"] == 1


def test_create_endpoint_refuses_no_target_two_targets_and_another_accounts_network(api: Client) -> None:
    network = ready_network(api)
    for body in ({}, {"network_id": network["id"], "recognition_spec_id": 1}):
        response = api.post("/v0.7/endpoints", headers=HEADERS, json={"name": "x", **body})
        assert response.status_code == 400, response.text
        assert "exactly one of network_id" in response.json["error"]
    other = api.post("/v0.7/endpoints", headers={"X-API-KEY": OTHER_KEY}, json={"name": "x", "network_id": 1})
    assert other.status_code == 400 and "names no network" in other.json["error"]
    assert api.get("/v0.7/endpoints", headers=HEADERS).json["count"] == 0


def test_patch_endpoint_renames_moves_its_name_and_refuses_read_only_fields(api: Client) -> None:
    network = ready_network(api)
    first = create_endpoint(api, network_id=network["id"])
    create_endpoint(api, name="taken", network_id=network["id"])
    path = f"/v0.7/endpoints/{first['id']}"
    renamed = api.patch(path, headers=HEADERS, json={"name": "animals", "replicas": 3})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json["name"] == "animals" and renamed.json["replicas"] == 3
    assert api.get("/v0.7/endpoints/lookup?name=animals", headers=HEADERS).json["id"] == first["id"]
    assert api.get("/v0.7/endpoints/lookup?name=pets", headers=HEADERS).status_code == 404
    clash = api.patch(path, headers=HEADERS, json={"name": "taken"})
    assert clash.status_code == 400 and "'taken'" in clash.json["error"]
    read_only = api.patch(path, headers=HEADERS, json={"status": "running"})
    assert read_only.status_code == 400 and "'status'" in read_only.json["error"]
    # The name freed by the rename can be taken again.
    create_endpoint(api, network_id=network["id"])


def test_another_accounts_endpoint_answers_404_on_every_route(api: Client) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    other = {"X-API-KEY": OTHER_KEY}
    path = f"/v0.7/endpoints/{endpoint['id']}"
    assert api.get(path, headers=other).status_code == 404
    assert api.patch(path, headers=other, json={"name": "mine"}).status_code == 404
    assert api.post(f"{path}/shutdown", headers=other).status_code == 404
    assert api.post(f"{path}/predict", headers=other, json={"features": [SOURCE]}).status_code == 404
    assert api.delete(path, headers=other).status_code == 404
    assert api.get("/v0.7/endpoints/lookup?name=pets", headers=other).status_code == 404


def test_delete_endpoint_frees_its_name(api: Client) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    assert api.delete(f"/v0.7/endpoints/{endpoint['id']}/", headers=HEADERS).status_code == 204
    assert api.get(f"/v0.7/endpoints/{endpoint['id']}", headers=HEADERS).status_code == 404
    assert api.get("/v0.7/endpoints", headers=HEADERS).json["count"] == 0
    create_endpoint(api, network_id=network["id"])


# -- list, search, cursor ---------------------------------------------------------------------


def test_list_endpoints_follows_cursor_links_and_searches_name_description_author(api: Client) -> None:
    network = ready_network(api)
    names = ["Cats", "dogs", "birds", "cat food", "fish"]
    for name in names:
        create_endpoint(api, name=name, network_id=network["id"], description=f"about {name.lower()}")
    seen: list[str] = []
    url = "/v0.7/endpoints/?limit=2"
    while url:
        page = api.get(url, headers=HEADERS).json
        assert page["count"] == 5
        seen += [item["name"] for item in page["results"]]
        url = page["next"] and page["next"].split("localhost", 1)[-1]
        assert page["next"] is None or "cursor=" in page["next"]
    assert seen == names
    assert [e["name"] for e in api.get("/v0.7/endpoints?offset=3", headers=HEADERS).json["results"]] == names[3:]
    found = api.get("/v0.7/endpoints?search=CAT", headers=HEADERS).json
    assert [item["name"] for item in found["results"]] == ["Cats", "cat food"]
    assert api.get("/v0.7/endpoints?search=about%20dogs", headers=HEADERS).json["results"][0]["name"] == "dogs"
    assert api.get("/v0.7/endpoints?author=de&name=fish", headers=HEADERS).json["count"] == 1
    assert api.get("/v0.7/endpoints?author=someone", headers=HEADERS).json["count"] == 0
    page = api.get("/v0.7/endpoints?search=a&limit=1", headers=HEADERS).json
    assert page["results"][0]["name"] == "Cats" and "search=a" in page["next"] and "cursor=" in page["next"]
    bad = api.get("/v0.7/endpoints?cursor=nonsense", headers=HEADERS)
    assert bad.status_code == 400 and "cursor" in bad.json["error"]


def test_list_endpoints_filters_status(api: Client) -> None:
    network = ready_network(api)
    create_endpoint(api, name="up", network_id=network["id"])
    down = create_endpoint(api, name="down", network_id=network["id"])
    api.post(f"/v0.7/endpoints/{down['id']}/shutdown", headers=HEADERS)
    page = api.get("/v0.7/endpoints?status=shutdown", headers=HEADERS).json
    assert [item["name"] for item in page["results"]] == ["down"]


# -- predict ----------------------------------------------------------------------------------


def test_predict_answers_results_in_the_same_response_when_ready_within_the_budget(
    api: Client, aws: dict[str, Any]
) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    worker = finish_queued_tasks(aws, count=2)
    response = api.post(f"/v0.7/endpoints/{endpoint['id']}/predict", headers=HEADERS, json={"features": [SOURCE] * 2})
    worker.join()
    assert response.status_code == 200, response.text
    body = response.json
    assert body["status"] == "complete" and len(body["task_ids"]) == 2
    for prediction in body["predictions"]:
        assert prediction["status"] == "success" and prediction["data"]["tensors"][0]["name"] == "probabilities"
        assert prediction["endpoint_id"] == endpoint["id"]
        assert prediction["target"] == {"network_id": network["id"], "canary": False}


def test_predict_not_ready_within_the_wait_answers_202_with_task_ids_to_poll(api: Client) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    response = api.post(
        f"/v0.7/endpoints/{endpoint['id']}/predict?wait=0",
        headers=HEADERS,
        json={"inputs": [{"image": {"source": SOURCE}}], "output_tensors": ["probabilities"]},
    )
    assert response.status_code == 202, response.text
    [task_id] = response.json["task_ids"]
    task = api.get(f"/v0.7/tasks/{task_id}", headers=HEADERS).json
    assert task["status"] == "pending" and task["endpoint_id"] == endpoint["id"]


def test_predict_through_a_spec_queues_its_current_versions_plan(api: Client, aws: dict[str, Any]) -> None:
    from tests.integration.test_inference_api import queued

    network = ready_network(api)
    spec = create_spec(api)
    version = create_version(api, spec["id"], network["id"])
    endpoint = create_endpoint(api, recognition_spec_id=spec["id"])
    response = api.post(
        f"/v0.7/endpoints/{endpoint['id']}/predict?wait=0", headers=HEADERS, json={"features": [SOURCE]}
    )
    assert response.status_code == 202, response.text
    [message] = queued(aws)
    assert message["recognition"]["version_id"] == version["id"]


def test_predict_after_shutdown_answers_409_with_a_sentence(api: Client, aws: dict[str, Any]) -> None:
    from tests.integration.test_inference_api import queued

    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    down = api.post(f"/v0.7/endpoints/{endpoint['id']}/shutdown", headers=HEADERS)
    assert down.status_code == 200 and down.json["status"] == "shutdown"
    refused = api.post(f"/v0.7/endpoints/{endpoint['id']}/predict", headers=HEADERS, json={"features": [SOURCE]})
    assert refused.status_code == 409 and "shut down" in refused.json["error"]
    assert queued(aws) == []


def test_predict_with_one_bad_feature_queues_none(api: Client, aws: dict[str, Any]) -> None:
    from tests.integration.test_inference_api import queued

    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    path = f"/v0.7/endpoints/{endpoint['id']}/predict"
    for body, words in (
        ({"features": [SOURCE, "not base64!"]}, "base64"),
        ({"features": [SOURCE, [[0.1, 0.2]]]}, "features[1]"),
        ({"features": []}, "features"),
        ({}, "features"),
        ({"features": [SOURCE], "inputs": []}, "not both"),
    ):
        response = api.post(path, headers=HEADERS, json=body)
        assert response.status_code == 400, (body, response.text)
        assert words in response.json["error"]
    assert api.post(f"{path}?wait=soon", headers=HEADERS, json={"features": [SOURCE]}).status_code == 400
    assert queued(aws) == []


def test_predict_after_the_target_network_was_deleted_answers_409_naming_it(api: Client) -> None:
    network = ready_network(api)
    endpoint = create_endpoint(api, network_id=network["id"])
    assert api.delete(f"/v0.7/networks/{network['id']}", headers=HEADERS).status_code == 204
    refused = api.post(f"/v0.7/endpoints/{endpoint['id']}/predict", headers=HEADERS, json={"features": [SOURCE]})
    assert refused.status_code == 409, refused.text
    assert f"No network with id {network['id']}" in refused.json["error"] and "PATCH" in refused.json["error"]
