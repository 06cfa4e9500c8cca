"""Shared fixtures: the template's resources under moto, API keys, and the gateway as a test client."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import pytest
from moto import mock_aws
from werkzeug.test import Client


def _share_parsed_models() -> None:
    """Parse botocore's models and template.yaml once per test process, not once per `aws` fixture.

    Every `aws` fixture builds new boto3 sessions (the adapters' clients are reset between tests)
    and a new Template; each re-parsed the same JSON and YAML, which was most of a fixture's setup
    time. botocore's models are read-only data (one session's clients already share them); the
    template document is copied for each Template, so a test may change its own copy.
    """
    from tensorgate_local import template

    loader = botocore.loaders.Loader
    load_service_model, load_data_with_path = loader.load_service_model, loader.load_data_with_path
    parsed: dict[tuple[Any, ...], Any] = {}

    def shared_service_model(self: Any, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        key = ("service", service_name, type_name, api_version, tuple(self.search_paths))
        if key not in parsed:
            parsed[key] = load_service_model(self, service_name, type_name, api_version)
        return parsed[key]

    def shared_data_with_path(self: Any, name: str) -> Any:
        key = ("data", name, tuple(self.search_paths))
        if key not in parsed:
            parsed[key] = load_data_with_path(self, name)
        return parsed[key]

    load_yaml = functools.lru_cache(maxsize=4)(template.load_yaml)
    loader.load_service_model = shared_service_model  # type: ignore[method-assign]
    loader.load_data_with_path = shared_data_with_path  # type: ignore[method-assign]
    template.load_yaml = lambda text: copy.deepcopy(load_yaml(text))


_share_parsed_models()
DEV_KEY = "tg_development_key_0123456789"
OTHER_KEY = "tg_other_account_key_0123456789"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tensorgate")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Tensorgate")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Tables, bucket, queues and notifications created from template.yaml's own properties, under moto."""
    from tensorgate import wiring
    from tensorgate_local.resources import create_all
    from tensorgate_local.sqs_emulation import atomic_deletes
    from tensorgate_local.template import Template

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    atomic_deletes()
    with mock_aws():
        template = Template(parameters={"ApiKeyPepper": "test-pepper-0123456789abcdef0123456789"})
        template.endpoint = "https://sqs.us-east-1.amazonaws.com"
        session = boto3.session.Session()
        create_all(template, session)
        functions = template.functions()
        for function in functions.values():
            for name, value in function.environment.items():
                monkeypatch.setenv(name, value)
        wiring.reset()
        auth = wiring.auth_service()
        auth.create_key("dev", DEV_KEY)
        auth.create_key("other", OTHER_KEY)
        yield {"template": template, "session": session, "functions": functions}
        wiring.reset()


@pytest.fixture
def api(aws: dict[str, Any]) -> Client:
    """The local API Gateway emulation in front of the template's handlers, without a socket."""
    from tensorgate_local.gateway import Gateway
    from tensorgate_local.lambdas import LocalFunctions

    return Client(Gateway(aws["template"], LocalFunctions(aws["functions"])))


def stored_state(aws: dict[str, Any]) -> dict[str, Any]:
    """Every network and task record and every object key: what a refused request must not change."""
    session = aws["session"]
    dynamodb = session.client("dynamodb")
    bucket = aws["template"].physical_name("ModelBucket")
    objects = session.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        "networks": dynamodb.scan(TableName="NetworksTable")["Items"],
        "tasks": dynamodb.scan(TableName="TasksTable")["Items"],
        "objects": sorted(item["Key"] for item in objects),
    }
