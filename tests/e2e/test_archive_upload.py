"""A network too large for one request: JSON create, then the archive through the presigned POST, then deployed."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import RunningStack
from tests.e2e.test_inference_e2e import demo_files, wait_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def saved_model_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/saved_model.pb", files["saved_model.pb"])
        archive.writestr("demo/variables/variables.index", files["variables.index"])
        archive.writestr("demo/variables/variables.data-00000-of-00001", files["variables.data-00000-of-00001"])
    return buffer.getvalue()


def test_json_create_then_presigned_archive_upload_deploys(local_stack_with_workers: RunningStack) -> None:
    stack = local_stack_with_workers
    headers = {"X-API-KEY": stack.api_key}
    files = demo_files(Path("/tmp/tg-demo"))
    body = {
        "name": "uploaded by archive",
        "archive_name": "model.zip",
        "preprocessing": {"inputs": [{"tensor_name": "image", "image": {"target_size": "64x64"}}]},
    }
    created = requests.post(f"{stack.url}/networks/", headers=headers, json=body, timeout=30)
    assert created.status_code == 201, created.text
    network = created.json()
    upload = network["upload"]
    assert upload["key"].endswith("/archive/model.zip") and upload["expires_in"] <= 3600
    assert network["status"] == "pending"

    # The presigned POST takes this one key, within the size range it was signed for.
    archive = saved_model_zip(files)
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("model.zip", archive)}, timeout=60)
    assert posted.status_code in (200, 204), posted.text

    [task] = wait_all(stack, [network["task_id"]])
    assert task["status"] == "success", json.dumps(task)[:2000]
    assert task["data"]["format"] == "saved_model" and task["data"]["parity"]["passed"]  # type: ignore[index]
    ready = requests.get(f"{stack.url}/networks/{network['id']}/", headers=headers, timeout=30).json()
    assert ready["status"] == "ready" and ready["preprocessing"]["inputs"][0]["image"]["target_size"] == "64x64"
