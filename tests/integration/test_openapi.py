"""The OpenAPI document: valid OpenAPI 3.1, the template's routes exactly, and true to what the handlers answer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from tensorgate_local.template import REPO_ROOT, Route, Template
from werkzeug.test import Client, TestResponse

from tests.conftest import DEV_KEY
from tests.integration.test_inference_api import IMAGE, ready_network


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from tensorgate import openapi

    return openapi.document()


def template_operations() -> dict[tuple[str, str], str]:
    """(method, path) → the Api event's name, for every Api event of template.yaml."""
    operations = {}
    for spec in Template().of_type("AWS::Serverless::Function").values():
        for name, event in spec["Properties"].get("Events", {}).items():
            if event["Type"] == "Api":
                operations[(event["Properties"]["Method"].upper(), event["Properties"]["Path"])] = name
    return operations


def documented_operations(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (method.upper(), path): operation["operationId"]
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def operation_for(document: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The documented operation a concrete request path falls under, with its path template."""
    for documented_method, template in documented_operations(document):
        if documented_method == method and Route(method, template, "").pattern().match(path.split("?", 1)[0]):
            return template, document["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} matches no documented operation")


@dataclass
class Exchange:
    method: str
    path: str
    response: TestResponse


def assert_conforms(document: dict[str, Any], exchange: Exchange) -> str:
    """The status is declared for the operation, the Content-Type is the declared one, the body fits its schema."""
    template, operation = operation_for(document, exchange.method, exchange.path)
    response = exchange.response
    status = str(response.status_code)
    where = f"{exchange.method} {exchange.path} -> {status}: {response.get_data(as_text=True)[:300]}"
    assert status in operation["responses"], f"undeclared status, {where}"
    declared = operation["responses"][status]
    if response.status_code == 204:
        assert "content" not in declared and not response.get_data(), where
        return f"{exchange.method} {template}"
    media_type = (response.content_type or "").split(";", 1)[0]
    assert media_type in declared["content"], f"Content-Type {response.content_type!r} undeclared, {where}"
    if media_type == "application/json":
        schema = {**declared["content"][media_type]["schema"], "components": document["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(response.get_data())))
        assert not errors, f"{where}\n" + "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return f"{exchange.method} {template}"


class Recorder:
    """Sends requests through the gateway emulation and keeps every exchange for the conformance check."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.exchanges: list[Exchange] = []

    def __call__(self, method: str, path: str, expected: int, key: str | None = DEV_KEY, **options: Any) -> Any:
        headers = {"X-API-KEY": key} if key else {}
        response = self.api.open(path, method=method, headers=headers, **options)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text[:300]}"
        self.exchanges.append(Exchange(method, path, response))
        return response.json if response.content_type == "application/json" else response.text


@pytest.fixture
def recorder(api: Client) -> Recorder:
    from tensorgate_local.gateway import KeyThrottle

    # The walk sends every route's requests back to back, faster than the usage plan lets one key
    # (test_rate_limits.py checks that limit): here the limit would only answer 429 where the walk expects.
    api.application.throttle = KeyThrottle(rate=1e6, burst=10**6)
    return Recorder(api)


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


def test_every_template_route_is_documented_and_every_documented_route_is_in_the_template(
    document: dict[str, Any],
) -> None:
    in_template, in_document = template_operations(), documented_operations(document)
    assert sorted(in_template.keys() - in_document.keys()) == [], "routes of template.yaml missing from the document"
    assert sorted(in_document.keys() - in_template.keys()) == [], "documented routes template.yaml does not have"
    # One name for a route, its event and its documentation.
    assert in_document == in_template


def test_every_status_a_domain_error_maps_to_is_documented(document: dict[str, Any]) -> None:
    from tensorgate import http, openapi

    assert set(http.STATUS_BY_ERROR.values()) <= set(openapi.ERROR_DESCRIPTIONS)
    declared = {
        status for methods in document["paths"].values() for op in methods.values() for status in op["responses"]
    }
    assert {str(status) for status in openapi.ERROR_DESCRIPTIONS} <= declared


def test_gateway_serves_the_document_for_its_own_host_and_the_docs_page(api: Client) -> None:
    from tensorgate import openapi

    for path in ("/v0.7/openapi.json", "/v0.7/openapi.json/"):
        response = api.get(path, base_url="http://tensorgate.test")
        assert response.status_code == 200 and response.content_type == "application/json"
        assert response.json == openapi.document("http://tensorgate.test")
    page = api.get("/v0.7/docs/", base_url="http://tensorgate.test")
    assert page.status_code == 200 and page.content_type == "text/html; charset=utf-8"
    assert 'data-openapi="http://tensorgate.test/v0.7/openapi.json"' in page.text
    # The page's policy admits its own script only, so the document's text can never run as code.
    assert "script-src 'sha256-" in page.headers["Content-Security-Policy"]


def test_handlers_answer_what_the_document_declares_on_every_route(
    api: Client, aws: dict[str, Any], recorder: Recorder, document: dict[str, Any]
) -> None:
    from tensorgate import wiring

    send = recorder
    form = {
        "name": "classifier",
        "preprocessing": json.dumps({"inputs": [{"tensor_name": "image", "image": {"target_size": "64x64"}}]}),
        "saved_model.pb": (io.BytesIO(b"a graph"), "saved_model.pb"),
    }
    created = send("POST", "/v0.7/networks/", 201, data=form)
    send("POST", "/v0.7/networks", 201, json={"name": "large", "archive_name": "model.tar.gz"})
    send("POST", "/v0.7/networks", 400, json={"name": ""})
    send("POST", "/v0.7/networks", 400, data="{not json", content_type="application/json")
    send("POST", "/v0.7/networks", 415, data="name=x", content_type="text/plain")
    send("POST", "/v0.7/networks", 401, key=None, json={"name": "x"})
    send("GET", "/v0.7/networks?offset=0&limit=1", 200)
    send("GET", "/v0.7/networks/?limit=0", 400)
    wiring.network_service().publish("dev", created["id"], "public-classifier")
    send("GET", "/v0.7/networks/public/", 200)
    send("GET", "/v0.7/networks/public/public-classifier/", 200)
    send("GET", "/v0.7/networks/public/nothing-here", 404)
    send("GET", f"/v0.7/networks/{created['id']}", 200)
    send("GET", "/v0.7/networks/424242", 404)
    send("GET", "/v0.7/networks/not-an-id", 404)
    # Found by fuzzing: a path ending in a line break reached the list routes (their regex ended in `$`).
    for path in ("/v0.7/networks/%0A", "/v0.7/networks/public/%0A", "/v0.7/tasks/%0A"):
        send("GET", path, 404)
    send("PATCH", f"/v0.7/networks/{created['id']}/", 200, json={"name": "renamed", "metadata": {"a": 1}})
    send(
        "PATCH",
        f"/v0.7/networks/{created['id']}",
        200,
        data={"description": "from a form"},
        content_type="multipart/form-data",
    )
    send("PATCH", f"/v0.7/networks/{created['id']}", 400, json={"framework": "onnx"})
    send("PATCH", f"/v0.7/networks/{created['id']}", 400, json={"name": None})
    send("PATCH", "/v0.7/networks/424242", 404, json={"name": "x"})
    send("GET", "/v0.7/networks/lookup?name=renamed", 200)
    send("GET", "/v0.7/networks/lookup?name=RENAMED", 404)
    send("GET", "/v0.7/networks/lookup", 400)
    send("GET", "/v0.7/networks?search=RENAM&status=pending&limit=1", 200)
    send("GET", "/v0.7/networks?cursor=x", 400)
    send("POST", f"/v0.7/networks/{created['id']}/inference", 409, json={"inputs": [{"image": {"source": "x"}}]})
    ready = ready_network(api)
    image = {"inputs[0]image.source": (io.BytesIO(IMAGE), "photo.png")}
    queued = send("POST", f"/v0.7/networks/{ready['id']}/inference/", 200, data=image)
    send("POST", f"/v0.7/networks/{ready['id']}/inference", 400, json={"inputs": []})
    send("POST", f"/v0.7/networks/{ready['id']}/inference", 415, data="x", content_type="text/plain")
    send("POST", "/v0.7/networks/424242/inference", 404, json={"inputs": [{"image": {"source": "x"}}]})
    send("GET", f"/v0.7/tasks/{queued['task_id']}/", 200)
    send("GET", f"/v0.7/tasks/{created['task_id']}", 200)
    send("GET", "/v0.7/tasks/424242", 404)
    send("GET", f"/v0.7/tasks?task_ids={queued['task_id']}&task_ids={created['task_id']}&limit=1", 200)
    send("GET", f"/v0.7/tasks/?task_ids={queued['task_id']},{created['task_id']}", 200)
    send("GET", "/v0.7/tasks", 400)
    send("GET", "/v0.7/tasks?task_ids=one", 400)
    send("DELETE", f"/v0.7/networks/{created['id']}/", 204)
    send("DELETE", f"/v0.7/networks/{created['id']}", 404)
    send("GET", "/v0.7/openapi.json", 200, key=None)
    send("GET", "/v0.7/docs", 200, key=None)
    for method, path in template_operations():
        sample = path.replace("{network_id}", "1").replace("{task_id}", "1").replace("{slug}", "s")
        sample = sample.replace("{spec_id}", "1").replace("{version_id}", "1")
        if path not in ("/v0.7/openapi.json", "/v0.7/docs"):
            send(method, sample, 401, key=None)
            send(method, sample, 401, key="tg_not_a_key_of_anyone_0000")

    covered = {assert_conforms(document, exchange) for exchange in recorder.exchanges}
    assert covered == {f"{method} {path}" for method, path in template_operations()}


def test_recognition_routes_answer_what_the_document_declares(
    api: Client, aws: dict[str, Any], recorder: Recorder, document: dict[str, Any]
) -> None:
    from tensorgate import openapi, wiring

    send = recorder
    examples = {operation.operation_id: operation.body_example for operation in openapi.OPERATIONS}
    spec = send("POST", "/v0.7/recognition/specs/", 201, json=examples["CreateRecognitionSpec"])
    send("POST", "/v0.7/recognition/specs", 400, json={"name": "no outputs"})
    send("POST", "/v0.7/recognition/specs", 415, data="name=x", content_type="text/plain")
    send("GET", "/v0.7/recognition/specs?limit=1", 200)
    send("GET", "/v0.7/recognition/specs?limit=0", 400)
    send("GET", f"/v0.7/recognition/specs/{spec['id']}/", 200)
    send("GET", "/v0.7/recognition/specs/424242", 404)
    send("PATCH", f"/v0.7/recognition/specs/{spec['id']}", 200, json={"name": "renamed"})
    send("PATCH", f"/v0.7/recognition/specs/{spec['id']}", 400, json={"outputs": []})
    send("PATCH", "/v0.7/recognition/specs/424242", 404, json={"name": "x"})
    send("GET", "/v0.7/recognition/specs/lookup?name=renamed", 200)
    send("GET", "/v0.7/recognition/specs/lookup?name=nothing", 404)
    send("GET", "/v0.7/recognition/specs?search=renamed&author=dev", 200)
    wiring.recognition_service().publish_spec("dev", spec["id"], "public-pets")
    send("GET", "/v0.7/recognition/public/", 200)
    send("GET", "/v0.7/recognition/public/public-pets", 200)
    send("GET", "/v0.7/recognition/public/nothing-here", 404)
    network = ready_network(api)
    pending = ready_network(api, status="pending")
    post = [{"classification": {"output_tensor": "probabilities", "thresholds": [0.5, 0.5]}}]
    body = {"spec_id": spec["id"], "network_id": network["id"], "post_processings": post}
    version = send("POST", "/v0.7/recognition/versions/", 201, json=body)
    send("POST", "/v0.7/recognition/versions", 409, json=body | {"network_id": pending["id"]})
    send("POST", "/v0.7/recognition/versions", 400, json=body | {"post_processings": []})
    send("GET", "/v0.7/recognition/versions?offset=0", 200)
    send("GET", f"/v0.7/recognition/specs/{spec['id']}/versions/", 200)
    send("GET", "/v0.7/recognition/specs/424242/versions", 404)
    send("GET", f"/v0.7/recognition/versions/{version['id']}", 200)
    send("GET", "/v0.7/recognition/versions/424242/", 404)
    request = {"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}]}
    send("POST", f"/v0.7/recognition/versions/{version['id']}/inference", 200, json=request)
    send("POST", f"/v0.7/recognition/specs/{spec['id']}/inference/", 200, json=request)
    image = {"inputs[0]image.source": (io.BytesIO(IMAGE), "photo.png")}
    send("POST", f"/v0.7/recognition/specs/{spec['id']}/inference", 200, data=image)
    send("POST", f"/v0.7/recognition/versions/{version['id']}/inference", 400, json={"inputs": []})
    send("POST", f"/v0.7/recognition/versions/{version['id']}/inference", 415, data="x", content_type="text/plain")
    send("POST", "/v0.7/recognition/versions/424242/inference", 404, json=request)
    send("DELETE", f"/v0.7/recognition/versions/{version['id']}/", 204)
    send("DELETE", f"/v0.7/recognition/versions/{version['id']}", 404)
    send("POST", f"/v0.7/recognition/specs/{spec['id']}/inference", 409, json=request)
    send("DELETE", f"/v0.7/recognition/specs/{spec['id']}", 204)
    send("DELETE", f"/v0.7/recognition/specs/{spec['id']}", 404)

    covered = {assert_conforms(document, exchange) for exchange in recorder.exchanges}
    recognition = {f"{method} {path}" for method, path in template_operations() if "/recognition/" in path}
    assert recognition <= covered


def test_endpoint_routes_answer_what_the_document_declares(
    api: Client, aws: dict[str, Any], recorder: Recorder, document: dict[str, Any]
) -> None:
    from tests.integration.test_endpoints_api import SOURCE, finish_queued_tasks

    send = recorder
    network = ready_network(api)
    endpoint = send("POST", "/v0.7/endpoints/", 201, json={"name": "pets", "network_id": network["id"], "replicas": 1})
    send("POST", "/v0.7/endpoints", 400, json={"name": "pets", "network_id": network["id"]})
    send("POST", "/v0.7/endpoints", 415, data="name=x", content_type="text/plain")
    send("GET", "/v0.7/endpoints?search=PET&limit=1", 200)
    send("GET", "/v0.7/endpoints?limit=0", 400)
    send("GET", "/v0.7/endpoints/lookup?name=pets", 200)
    send("GET", "/v0.7/endpoints/lookup?name=Pets", 404)
    send("GET", f"/v0.7/endpoints/{endpoint['id']}/", 200)
    send("GET", "/v0.7/endpoints/424242", 404)
    send(
        "PATCH", f"/v0.7/endpoints/{endpoint['id']}", 200, json={"canary": {"network_id": network["id"], "weight": 0.1}}
    )
    send("PATCH", f"/v0.7/endpoints/{endpoint['id']}", 400, json={"author": "me"})
    send("PATCH", "/v0.7/endpoints/424242", 404, json={"replicas": 2})
    worker = finish_queued_tasks(aws, count=1)
    send("POST", f"/v0.7/endpoints/{endpoint['id']}/predict", 200, json={"features": [SOURCE]})
    worker.join()
    send(
        "POST",
        f"/v0.7/endpoints/{endpoint['id']}/predict?wait=0",
        202,
        json={"inputs": [{"image": {"source": SOURCE}}]},
    )
    image = {"inputs[0]image.source": (io.BytesIO(IMAGE), "photo.png")}
    send("POST", f"/v0.7/endpoints/{endpoint['id']}/predict?wait=0", 202, data=image)
    send("POST", f"/v0.7/endpoints/{endpoint['id']}/predict", 400, json={"features": []})
    send("POST", "/v0.7/endpoints/424242/predict", 404, json={"features": [SOURCE]})
    send("POST", f"/v0.7/endpoints/{endpoint['id']}/shutdown", 200)
    send("POST", "/v0.7/endpoints/424242/shutdown", 404)
    send("POST", f"/v0.7/endpoints/{endpoint['id']}/predict", 409, json={"features": [SOURCE]})
    send("DELETE", f"/v0.7/endpoints/{endpoint['id']}", 204)
    send("DELETE", f"/v0.7/endpoints/{endpoint['id']}", 404)

    covered = {assert_conforms(document, exchange) for exchange in recorder.exchanges}
    endpoints = {f"{method} {path}" for method, path in template_operations() if "/endpoints" in path}
    assert endpoints <= covered


def test_openapi_module_loads_no_image_library_and_the_other_handlers_never_load_it() -> None:
    probe = (
        "import importlib, json, sys\n"
        "for name in ('functions.networks_api.app', 'functions.tasks_api.app', 'functions.inference_api.app'):\n"
        "    importlib.import_module(name)\n"
        "before = 'tensorgate.openapi' in sys.modules\n"
        "from tensorgate import openapi\n"
        "openapi.document()\n"
        "print(json.dumps({'before': before, 'heavy': [m for m in ('numpy', 'PIL') if m in sys.modules]}))\n"
    )
    environment = os.environ | {"PYTHONPATH": str(REPO_ROOT), "AWS_DEFAULT_REGION": "us-east-1"}
    completed = subprocess.run(
        [sys.executable, "-c", probe], env=environment, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == {"before": False, "heavy": []}


def test_documented_request_examples_are_accepted_by_the_handlers(api: Client, recorder: Recorder) -> None:
    from tensorgate import openapi

    examples = {operation.operation_id: operation.body_example for operation in openapi.OPERATIONS}
    created = recorder("POST", "/v0.7/networks", 201, json=examples["CreateNetwork"])
    recorder("PATCH", f"/v0.7/networks/{created['id']}", 200, json=examples["UpdateNetwork"])
    ready = ready_network(api)
    recorder("POST", f"/v0.7/networks/{ready['id']}/inference", 200, json=examples["SubmitInference"])
    spec = recorder("POST", "/v0.7/recognition/specs", 201, json=examples["CreateRecognitionSpec"])
    softmax = ready_network(api, postprocessings=[{"tensors_output": {"tensors": ["softmax"]}}])
    version = examples["CreateRecognitionVersion"] | {"spec_id": spec["id"], "network_id": softmax["id"]}
    assert recorder("POST", "/v0.7/recognition/versions", 201, json=version)["id"] == 1
    recorder("PATCH", f"/v0.7/recognition/specs/{spec['id']}", 200, json=examples["UpdateRecognitionSpec"])
    example = examples["SubmitRecognitionVersionInference"]
    recorder("POST", "/v0.7/recognition/versions/1/inference", 200, json=example)
    example = examples["SubmitRecognitionSpecInference"]
    recorder("POST", f"/v0.7/recognition/specs/{spec['id']}/inference", 200, json=example)
