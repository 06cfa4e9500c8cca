"""template.yaml: lint-clean, and every function, route and queue it names exists in the code."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tensorgate_local.template import REPO_ROOT, Template


def test_template_passes_cfn_lint() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "template.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(Template().functions()))
def test_every_function_handler_imports(name: str) -> None:
    function = Template().functions()[name]
    folder = REPO_ROOT / function.module.rsplit(".", 1)[0].replace(".", "/")
    assert folder.is_dir(), f"{name}: no folder {folder}"
    if function.module.startswith("functions.converter"):
        pytest.importorskip("tensorflow")
    module = importlib.import_module(function.module)
    assert callable(getattr(module, function.attribute))


def test_function_folders_are_named_after_their_logical_ids() -> None:
    for name, function in Template().functions().items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
        assert function.module.split(".")[1] == snake, name


def test_every_route_is_served_by_its_handler(api: object) -> None:
    """A route the handler serves asks for a key (401), or answers (200) when its documentation says it needs none;
    one it does not serve would answer 404."""
    from tensorgate import openapi

    public = {(operation.method, operation.path) for operation in openapi.OPERATIONS if operation.public}
    for route in Template().routes():
        sample = re.sub(r"\{[^}]+\}", "1", route.path)
        expected = 200 if (route.method, route.path) in public else 401
        for path in (sample, sample + "/"):
            response = api.open(path, method=route.method)  # type: ignore[attr-defined]
            assert response.status_code == expected, f"{route.method} {path}: {response.status_code} {response.text}"


def test_route_patterns_match_as_api_gateway_does_even_before_a_final_line_break() -> None:
    routes = {(route.method, route.path): route.pattern() for route in Template().routes()}
    assert routes[("GET", "/v0.7/networks/public")].match("/v0.7/networks/public/")
    assert not routes[("GET", "/v0.7/networks/public")].match("/v0.7/networks/public/\n")
    assert routes[("GET", "/v0.7/networks/public/{slug}")].match("/v0.7/networks/public/\n")


def test_event_source_queues_exist_in_the_template() -> None:
    template = Template()
    queues = template.of_type("AWS::SQS::Queue")
    for source in template.queue_sources():
        assert source.queue in queues
