"""The API handlers stay light: importing one, and building the services its requests use, loads no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("numpy", "PIL", "tensorflow", "onnxruntime", "torch")
PROBE = """
import gc, importlib, json, sys
heavy = {heavy!r}
importlib.import_module({module!r})
after_import = [name for name in heavy if name in sys.modules]
collecting = gc.isenabled()
from tensorgate import wiring
for build in (wiring.auth_service, wiring.network_service, wiring.task_service, wiring.inference_service):
    build()
after_services = [name for name in heavy if name in sys.modules]
print(json.dumps({{"after_import": after_import, "after_services": after_services, "collecting": collecting}}))
"""


def api_handler_modules() -> list[str]:
    paths = sorted(REPO_ROOT.glob("functions/*_api/app.py")) + sorted(
        REPO_ROOT.glob("functions/dead_letter_handler/app.py")
    )
    return [".".join(path.relative_to(REPO_ROOT).with_suffix("").parts) for path in paths]


def test_api_handlers_are_found() -> None:
    assert {"functions.networks_api.app", "functions.tasks_api.app"} <= set(api_handler_modules())


@pytest.mark.parametrize("module", api_handler_modules())
def test_handler_import_and_its_services_load_no_heavy_library(module: str) -> None:
    # Given: a fresh interpreter in Lambda's environment (tracing on), with no AWS access needed
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment |= {
        "PYTHONPATH": str(REPO_ROOT),
        "LAMBDA_TASK_ROOT": str(REPO_ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "handler-import-test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    # When
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY_MODULES)],
        env=environment,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded["after_import"] == [], f"importing {module} loads {loaded['after_import']}"
    assert loaded["after_services"] == [], f"the API services load {loaded['after_services']}"
    assert not loaded["collecting"], (
        f"{module} must call tensorgate.coldstart.pause() before its other imports, and resume() after a request"
    )


SCHEMA_PROBE = """
import importlib, json, sys
from pydantic import BaseModel
for module in {modules!r}:
    importlib.import_module(module)

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

ours = [cls for cls in subclasses(BaseModel) if cls.__module__.startswith("tensorgate")]
print(json.dumps({{"models": len(ours), "built": sorted(c.__name__ for c in ours if c.__pydantic_complete__)}}))
"""
MODEL_MODULES = (
    "tensorgate.models",
    "tensorgate.messages",
    "tensorgate.schemas",
    "tensorgate.responses",
    "tensorgate.services.inference",
    "tensorgate.services.networks",
    "tensorgate_preprocessing.spec",
)
FIRST_REQUEST_PROBE = """
import gc, json, sys
import boto3
from moto import mock_aws
from tensorgate_local.resources import create_all
from tensorgate_local.template import Template
import os

with mock_aws():
    template = Template(parameters={{"ApiKeyPepper": "test-pepper-0123456789abcdef0123456789"}})
    template.endpoint = "https://sqs.us-east-1.amazonaws.com"
    create_all(template, boto3.session.Session())
    for function in template.functions().values():
        os.environ.update(function.environment)
    from tensorgate import wiring

    wiring.auth_service().create_key("dev", "tg_development_key_0123456789")
    # The records as stored, written without the models so that the request is the first to validate them
    created = {{"create_date": "2030-01-01T00:00:00Z", "update_date": "2030-01-01T00:00:00Z"}}
    network = {{"account_id": "dev", "network_id": 1, "name": "n", "framework": "onnx", "task_id": 1,
                "upload_prefix": "uploads/dev/1/", **created}}
    task = {{"task_id": 1, "account_id": "dev", "kind": "deploy", "network_id": 1, **created}}
    dynamodb = boto3.client("dynamodb")
    dynamodb.put_item(TableName=os.environ["NETWORKS_TABLE"], Item={{
        "account_id": {{"S": "dev"}}, "network_id": {{"N": "1"}}, "status": {{"S": "pending"}},
        "version": {{"N": "1"}}, "document": {{"S": json.dumps(network)}}}})
    dynamodb.put_item(TableName=os.environ["TASKS_TABLE"], Item={{
        "task_id": {{"N": "1"}}, "account_id": {{"S": "dev"}}, "status": {{"S": "pending"}},
        "kind": {{"S": "deploy"}}, "document": {{"S": json.dumps(task)}}}})
    import importlib
    from pydantic import BaseModel
    from tensorgate_local.lambdas import LocalContext

    handler = importlib.import_module({module!r})
    paused = not gc.isenabled()
    event = json.loads(open({event!r}).read())
    status = handler.handler(event, LocalContext("probe", 29))["statusCode"]

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

ours = [cls for cls in subclasses(BaseModel) if cls.__module__.startswith("tensorgate")]
built = sorted(cls.__name__ for cls in ours if cls.__pydantic_complete__)
loaded = [m for m in ("tensorgate.openapi", "tensorgate.responses", "tensorgate.schemas", "tensorgate_preprocessing")
          if m in sys.modules]
result = {{"status": status, "built": built, "loaded": loaded, "paused": paused, "collecting": gc.isenabled()}}
print(json.dumps(result))
"""


def run_probe(code: str) -> dict[str, Any]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment |= {
        "AWS_LAMBDA_FUNCTION_NAME": "first-request-test",
        "PYTHONPATH": str(REPO_ROOT),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_pydantic_models_build_their_schemas_on_first_use_not_at_import() -> None:
    # A cold request pays for the validators it uses only (pydantic's defer_build on every model).
    result = run_probe(SCHEMA_PROBE.format(modules=MODEL_MODULES))
    assert result["models"] >= 20
    assert result["built"] == []


@pytest.mark.parametrize(
    ("module", "event", "needed"),
    [
        ("functions.tasks_api.app", "events/tasks_api/01_get.json", ["ApiKey", "Task"]),
        ("functions.networks_api.app", "events/networks_api/05_get.json", ["ApiKey", "Network"]),
    ],
)
def test_handler_first_request_builds_only_the_models_it_uses(module: str, event: str, needed: list[str]) -> None:
    # Given a fresh interpreter, under moto, holding network 1 and task 1 of the development key
    # When the handler serves its first request
    result = run_probe(FIRST_REQUEST_PROBE.format(module=module, event=str(REPO_ROOT / event)))
    # Then only the records it read were validated; no request schema, response model or OpenAPI module built
    assert result["status"] == 200
    assert result["built"] == needed
    # Garbage collection paused from the handler's import to the end of its first request (tensorgate.coldstart)
    assert result["paused"] and result["collecting"]
    assert "tensorgate.openapi" not in result["loaded"] and "tensorgate.responses" not in result["loaded"]
    if module == "functions.tasks_api.app":
        assert result["loaded"] == [], "the tasks API loads no request schema"
