"""Schemathesis against the running local stack, every operation of the document it serves: no 5xx, nothing undeclared.

`make test` runs a CI-sized pass: the examples, fuzzing and stateful phases with TENSORGATE_FUZZ_EXAMPLES
(default 20) examples per operation and phase, every operation reached (1,333 requests for 61 operations).
`make fuzz` runs every phase (TENSORGATE_FUZZ_PHASES) with 500: the coverage phase too, which ignores the
example count and sends every boundary and negative case the document defines (~4,800 requests, 4/5 of what
the suite's fuzz sent when it ran there). Each run draws a new seed and prints it: TENSORGATE_FUZZ_SEED=<seed>
replays a failure.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.e2e.conftest import REPO_ROOT, RunningStack
from tests.e2e.fuzz_hooks import KEPT_RECOGNITION, PENDING_NETWORK_ID, READY_NETWORK_ID, VERSION_BINDING

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TENSORGATE_FUZZ_EXAMPLES", "20"))
PHASES = os.environ.get("TENSORGATE_FUZZ_PHASES") or "examples,fuzzing,stateful"
SEED = int(os.environ.get("TENSORGATE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
# The brief of the fuzz: the document's statuses, media types, bodies and headers, and never a 5xx.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
FUZZ_ACCOUNT = "fuzz"
PUBLIC_SLUG = "fuzz-public-classifier"
PUBLIC_SPEC_SLUG = "fuzz-public-spec"
PREPROCESSING = {"inputs": [{"tensor_name": "image", "image": {"target_size": "64x64"}}]}
POSTPROCESSINGS = [{"tensors_output": {"tensors": ["probabilities"], "labels": ["cat", "dog", "car", "sky"]}}]


def operator_environment(stack: RunningStack) -> dict[str, str]:
    """The variables the stack's banner gives for operator commands (`tensorgate-admin`)."""
    line = next(line for line in stack.printed().splitlines() if "Operator commands:" in line)
    return dict(re.findall(r"([A-Z_]+)=(\S+)", line))


def admin(stack: RunningStack, *arguments: str) -> str:
    command = Path(sys.executable).with_name("tensorgate-admin")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    completed = subprocess.run(
        [str(command), *arguments],
        env=environment | operator_environment(stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def prepare_account(stack: RunningStack) -> str:
    """A key of a fresh account with two networks at known ids: one pending, one ready (as a conversion
    leaves it, so inference requests reach their validation), and a public copy of the ready one."""
    from tensorgate.adapters.dynamodb import DynamoNetworkRepository
    from tensorgate.models import NetworkStatus

    api_key = json.loads(admin(stack, "create-key", FUZZ_ACCOUNT))["api_key"]
    created = requests.post(
        f"{stack.url}/networks",
        headers={"X-API-KEY": api_key},
        json={"name": "fuzzed", "preprocessing": PREPROCESSING, "postprocessings": POSTPROCESSINGS},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    environment = operator_environment(stack)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=environment["AWS_ENDPOINT_URL"],
        region_name=environment["AWS_DEFAULT_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )
    networks = DynamoNetworkRepository("NetworksTable", dynamodb)
    pending = networks.get(FUZZ_ACCOUNT, created.json()["id"])
    assert pending is not None
    networks.put_new(pending.model_copy(update={"network_id": PENDING_NETWORK_ID}))
    ready = {
        "network_id": READY_NETWORK_ID,
        "status": NetworkStatus.READY,
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": ["N", 4]}],
    }
    networks.put_new(pending.model_copy(update=ready))
    admin(stack, "publish", FUZZ_ACCOUNT, str(READY_NETWORK_ID), PUBLIC_SLUG)
    return api_key


def prepare_recognition(stack: RunningStack, api_key: str) -> dict[str, int]:
    """A spec whose current version reads the ready network, so recognition inference reaches its validation;
    the spec's public copy; and an endpoint on the spec, so predictions reach theirs."""
    headers = {"X-API-KEY": api_key}
    labels = [{"id": index, "name": name} for index, name in enumerate(POSTPROCESSINGS[0]["tensors_output"]["labels"])]
    spec = requests.post(
        f"{stack.url}/recognition/specs",
        headers=headers,
        json={"name": "fuzzed spec", "outputs": [{"labels": {"roi": "NONE", "labels": labels}}]},
        timeout=30,
    )
    assert spec.status_code == 201, spec.text
    version = requests.post(
        f"{stack.url}/recognition/versions", headers=headers, json=version_binding(spec.json()["id"]), timeout=30
    )
    assert version.status_code == 201, version.text
    admin(stack, "publish-spec", FUZZ_ACCOUNT, str(spec.json()["id"]), PUBLIC_SPEC_SLUG)
    endpoint = requests.post(
        f"{stack.url}/endpoints",
        headers=headers,
        json={"name": "fuzzed endpoint", "recognition_spec_id": spec.json()["id"]},
        timeout=30,
    )
    assert endpoint.status_code == 201, endpoint.text
    return {"spec_id": spec.json()["id"], "version_id": version.json()["id"], "endpoint_id": endpoint.json()["id"]}


def schemathesis_config(recognition: dict[str, int]) -> str:
    """Known ids mixed into what is generated: inference on the ready and the pending network, the public slug,
    the spec, its version and the endpoint on it."""
    return f"""
hooks = "tests.e2e.fuzz_hooks"

[dictionaries.networks]
values = [{READY_NETWORK_ID}, {PENDING_NETWORK_ID}]

[dictionaries.slugs]
values = ["{PUBLIC_SLUG}"]

[[operations]]
include-operation-id = "SubmitInference"
parameters = {{ "path.network_id" = {{ dictionary = "networks", probability = 0.9 }} }}

[[operations]]
include-operation-id = "GetNetwork"
parameters = {{ "path.network_id" = {{ dictionary = "networks", probability = 0.5 }} }}

[[operations]]
include-operation-id = "GetPublicNetwork"
parameters = {{ "path.slug" = {{ dictionary = "slugs", probability = 0.5 }} }}

[dictionaries.specs]
values = [{recognition["spec_id"]}]

[dictionaries.versions]
values = [{recognition["version_id"]}]

[dictionaries.spec_slugs]
values = ["{PUBLIC_SPEC_SLUG}"]

[[operations]]
include-operation-id = "SubmitRecognitionSpecInference"
parameters = {{ "path.spec_id" = {{ dictionary = "specs", probability = 0.9 }} }}

[[operations]]
include-operation-id = "SubmitRecognitionVersionInference"
parameters = {{ "path.version_id" = {{ dictionary = "versions", probability = 0.9 }} }}

[[operations]]
include-operation-id = "GetRecognitionSpec"
parameters = {{ "path.spec_id" = {{ dictionary = "specs", probability = 0.5 }} }}

[[operations]]
include-operation-id = "UpdateRecognitionSpec"
parameters = {{ "path.spec_id" = {{ dictionary = "specs", probability = 0.5 }} }}

[[operations]]
include-operation-id = "ListRecognitionSpecVersions"
parameters = {{ "path.spec_id" = {{ dictionary = "specs", probability = 0.5 }} }}

[[operations]]
include-operation-id = "GetRecognitionVersion"
parameters = {{ "path.version_id" = {{ dictionary = "versions", probability = 0.5 }} }}

[[operations]]
include-operation-id = "GetPublicRecognitionSpec"
parameters = {{ "path.slug" = {{ dictionary = "spec_slugs", probability = 0.5 }} }}

[dictionaries.endpoints]
values = [{recognition["endpoint_id"]}]

[[operations]]
include-operation-id = "PredictEndpoint"
parameters = {{ "path.endpoint_id" = {{ dictionary = "endpoints", probability = 0.9 }} }}

[[operations]]
include-operation-id = "GetEndpoint"
parameters = {{ "path.endpoint_id" = {{ dictionary = "endpoints", probability = 0.5 }} }}

[[operations]]
include-operation-id = "UpdateEndpoint"
parameters = {{ "path.endpoint_id" = {{ dictionary = "endpoints", probability = 0.5 }} }}
"""


@pytest.mark.timeout(900 if EXAMPLES <= 50 else 4 * 3600)
def version_binding(spec_id: int) -> dict[str, Any]:
    """A version body the stack accepts: the spec's labels read from the ready network's output."""
    labels = POSTPROCESSINGS[0]["tensors_output"]["labels"]
    post = [{"classification": {"output_tensor": "probabilities", "thresholds": [0.5] * len(labels)}}]
    return {"spec_id": spec_id, "network_id": READY_NETWORK_ID, "post_processings": post}


def test_fuzz_every_operation_answers_as_documented_and_never_5xx(local_stack: RunningStack, tmp_path: Path) -> None:
    # Given: a fresh account on the stack, and the document the stack serves
    api_key = prepare_account(local_stack)
    recognition = prepare_recognition(local_stack, api_key)
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(recognition))
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{local_stack.url}/openapi.json",
        "--header",
        f"X-API-KEY: {api_key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--continue-on-failure",
        # The stack throttles per key as the usage plan does; a 429 is declared, and waiting keeps coverage.
        "--rate-limit",
        "auto",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]

    # When
    environment = os.environ | {
        "PYTHONPATH": str(REPO_ROOT),
        KEPT_RECOGNITION: json.dumps(recognition),
        VERSION_BINDING: json.dumps(version_binding(recognition["spec_id"])),
    }
    completed = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=4 * 3600)

    # Then
    output = completed.stdout + completed.stderr
    assert report.exists(), output[-5000:]
    figures: dict[str, Any] = json.loads(report.read_text())
    print(output[output.rfind("WARNINGS") - 36 :] if "WARNINGS" in output else output[-3000:])
    print(
        f"\nfuzz seed {SEED}: {figures['operations']['tested']} operations, "
        f"{figures['test_cases']['generated']} test cases ({EXAMPLES} examples per operation and phase; {PHASES}), "
        f"{len(figures['failures'])} failures, {len(figures['errors'])} errors, "
        f"{figures['running_time']:.0f} s"
    )
    assert completed.returncode == 0, f"seed {SEED}; replay with TENSORGATE_FUZZ_SEED={SEED}\n{output[-20000:]}"
    assert figures["operations"]["tested"] == figures["operations"]["total"] >= 10
    assert figures["failures"] == [] and figures["errors"] == []
    # And the run created recognition versions of its own (ids come from one counter, so the next is further on)
    after = requests.post(
        f"{local_stack.url}/recognition/versions",
        headers={"X-API-KEY": api_key},
        json=version_binding(recognition["spec_id"]),
        timeout=30,
    )
    assert after.status_code == 201, after.text
    assert after.json()["id"] > recognition["version_id"] + 1
