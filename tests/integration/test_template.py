"""template.yaml: lint-clean, and every function, route and queue it names exists in the code."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import re
import subprocess
import sys
from datetime import date
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


# The day Lambda deprecates each Python runtime (security patches end; creating functions is blocked a month
# later), from the runtime table of the AWS Lambda Developer Guide, "Lambda runtimes"
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html), as read in 2026-12.
PYTHON_RUNTIME_DEPRECATION = {
    "python3.11": date(2027, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
    "python3.14": date(2029, 6, 30),
}
# A zip function's runtime must outlive 2027: a deploy made today keeps security patches for a year at least.
SUPPORTED_THROUGH = date(2027, 12, 31)


def zip_runtimes(template: Template) -> dict[str, str]:
    """Each zip function's runtime (its own, or the Globals one); image functions carry theirs in the image."""
    default = template.document.get("Globals", {}).get("Function", {}).get("Runtime")
    return {
        name: spec["Properties"].get("Runtime", default)
        for name, spec in template.of_type("AWS::Serverless::Function").items()
        if spec["Properties"].get("PackageType", "Zip") == "Zip"
    }


def test_zip_functions_run_on_a_python_runtime_supported_through_2027() -> None:
    runtimes = zip_runtimes(Template())
    assert runtimes, "the template has no zip function"
    for name, runtime in runtimes.items():
        assert runtime in PYTHON_RUNTIME_DEPRECATION, f"{name}: {runtime} is not a known Python runtime"
        deprecated = PYTHON_RUNTIME_DEPRECATION[runtime]
        assert deprecated > SUPPORTED_THROUGH, f"{name}: {runtime} is deprecated on {deprecated}"


def test_layers_are_built_for_and_compatible_with_every_zip_function_runtime() -> None:
    template = Template()
    runtimes = set(zip_runtimes(template).values())
    for name, spec in template.of_type("AWS::Serverless::LayerVersion").items():
        assert runtimes <= set(spec["Properties"]["CompatibleRuntimes"]), name
        # `sam build` installs a layer's requirements with the interpreter its BuildMethod names.
        assert spec["Metadata"]["BuildMethod"] in runtimes, name


def test_runtime_deprecation_dates_agree_with_cfn_lint() -> None:
    """cfn-lint ships Lambda's runtime lifecycle (it warns on deprecated runtimes): the table above follows it."""
    spec = importlib.resources.files("cfnlint.data.AdditionalSpecs").joinpath("LmbdRuntimeLifecycle.json")
    lifecycle = json.loads(spec.read_text())
    for runtime, deprecated in PYTHON_RUNTIME_DEPRECATION.items():
        assert lifecycle[runtime]["deprecated"] == deprecated.isoformat(), runtime


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
