"""The README's walkthrough, run as written against `tensorgate-dev` (only the port differs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT, RunningStack, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
README_KEY = "tg_demo_key_0123456789"


def walkthrough() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Walkthrough", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def fresh_stack() -> Iterator[RunningStack]:
    """A stack of its own, so the ids the README shows (network 1, task 1) are the ones created."""
    stack = start_stack(with_workers=True)
    yield stack
    stop_stack(stack)


def test_readme_walkthrough_runs_verbatim(fresh_stack: RunningStack, tmp_path: object) -> None:
    script = walkthrough().replace("http://127.0.0.1:3000", fresh_stack.host).replace(README_KEY, fresh_stack.api_key)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = [line for line in result.stdout.splitlines() if line.startswith("{")]
    created = json.loads(outputs[0])
    assert created["id"] == 1 and created["task_id"] == 1 and created["status"] == "pending"
    listed = json.loads(outputs[1])
    assert listed["count"] == 1 and listed["next"] is None
    inference = next(json.loads(line) for line in outputs if line.startswith('{"task_id"'))
    answered = next(json.loads(line) for line in outputs if f'"id":{inference["task_id"]},' in line)
    assert answered["status"] == "success" and answered["data"]["tensors"][0]["name"] == "probabilities"
    renamed = next(json.loads(line) for line in outputs if '"new name"' in line)
    assert renamed["description"] == "new description"
    assert result.stdout.rstrip().endswith("204")
    assert not [line for line in outputs if '"error":"' in line.replace(" ", "")], result.stdout


def test_walkthrough_model_deploys_with_a_parity_report(fresh_stack: RunningStack) -> None:
    """The same files, deployed for real: the deploy task ends `success` carrying the parity report."""
    headers = {"X-API-KEY": fresh_stack.api_key}
    demo = "/tmp/tg-demo/"
    if not (REPO_ROOT / demo / "saved_model.pb").exists():  # the walkthrough writes them; alone, write them here
        subprocess.run([sys.executable, "examples/make_demo_model.py", demo], cwd=REPO_ROOT, check=True, timeout=300)
    preprocessing = {
        "inputs": [
            {
                "tensor_name": "image",
                "image": {
                    "dimension_order": "NHWC",
                    "target_size": "64x64",
                    "mean_file": "mean.npy",
                    "pixel_scaling": 1.0,
                },
            }
        ]
    }
    files = {
        name: open(demo + name, "rb")  # noqa: SIM115 - requests closes them
        for name in ("saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy")
    }
    response = requests.post(
        f"{fresh_stack.url}/networks/",
        headers=headers,
        data={"name": "deployed", "preprocessing": json.dumps(preprocessing)},
        files=files,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    network = response.json()
    task = wait_for_task(fresh_stack, network["task_id"])
    assert task["status"] == "success", task
    parity = task["data"]["parity"]
    assert parity["passed"] and parity["outputs"][0]["max_abs"] <= 1e-4
    ready = requests.get(f"{fresh_stack.url}/networks/{network['id']}/", headers=headers, timeout=30).json()
    assert ready["status"] == "ready"
    assert ready["inputs"][0]["shape"][1:] == [64, 64, 3]


def wait_for_task(stack: RunningStack, task_id: int, seconds: float = 300) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        task = requests.get(f"{stack.url}/tasks/{task_id}/", headers={"X-API-KEY": stack.api_key}, timeout=30).json()
        if task["status"] != "pending":
            return task  # type: ignore[no-any-return]
        time.sleep(1)
    pytest.fail(f"task {task_id} still pending after {seconds} s:\n{stack.printed()[-3000:]}")
