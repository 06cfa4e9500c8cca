"""The API handlers stay light: importing one, and building the services its requests use, loads no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("numpy", "PIL", "tensorflow", "onnxruntime")
PROBE = """
import importlib, json, sys
heavy = {heavy!r}
importlib.import_module({module!r})
after_import = [name for name in heavy if name in sys.modules]
from tensorgate import wiring
for build in (wiring.auth_service, wiring.network_service, wiring.task_service, wiring.inference_service):
    build()
after_services = [name for name in heavy if name in sys.modules]
print(json.dumps({{"after_import": after_import, "after_services": after_services}}))
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
