"""Cold start: each handler's import and first request against boto3 + Powertools alone, in fresh interpreters.

Every figure is the median of several runs, each in a new `python -c` process. Two moments are timed:
- import: the handler module's import alone (interpreter start-up excluded);
- first request: that import plus the handler's first request, an event as API Gateway or SQS sends it,
  served against the template's tables, bucket and queues in moto's server (its own process, so its
  work is not counted). This is what a cold request really pays: the services, models and schemas the
  request loads, its validation and its answer.
The baseline is `import boto3, aws_lambda_powertools` and, for its first request, one DynamoDB GetItem.
In both, the boto3 clients are created between the two timers, untimed: every boto3 handler pays the
same for them, whatever it imports. The verdict uses CPU time (`time.process_time()`), which stays
meaningful on a busy machine; the first request's wall time is printed beside it. Runs are interleaved
(baseline, handler, handler, ...) so that load spreads evenly. Bytecode is compiled once into a
temporary cache before measuring, as for code deployed with its `.pyc` files; the environment is
Lambda's (tracing on), so Powertools behaves as deployed.

Goal (issue 10): each handler's first request at most 1.3x the baseline's, and none of numpy, Pillow,
TensorFlow or onnxruntime loaded by it.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import importlib.util
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# This checkout's code, ahead of any installed copy (so a second worktree measures its own).
SOURCE_ROOTS = [str(REPO_ROOT / folder) for folder in ("", "shared", "layers/preprocessing", "local")]
sys.path[:0] = SOURCE_ROOTS
GOAL_RATIO = 1.3
HEAVY_MODULES = ("numpy", "PIL", "tensorflow", "onnxruntime")
PEPPER = "bench-pepper-0123456789abcdef0123456789"
PROBE = """
import json, sys, time
class Context:
    function_name, memory_limit_in_mb, aws_request_id = {function!r}, 512, "cold-start-bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    function_version = "$LATEST"
    def get_remaining_time_in_millis(self):
        return 29_000
event = json.loads(sys.stdin.read())
started, cpu_started = time.perf_counter(), time.process_time()
{import_code}
imported_cpu = time.process_time() - cpu_started
imported_wall = time.perf_counter() - started
{clients_code}
request_started, request_cpu_started = time.perf_counter(), time.process_time()
status = {request_code}
request_cpu = time.process_time() - request_cpu_started
request_wall = time.perf_counter() - request_started
print(json.dumps({{
    "import": imported_cpu, "first": imported_cpu + request_cpu, "first_wall": imported_wall + request_wall,
    "status": status, "heavy": [m for m in {heavy!r} if m in sys.modules],
}}))
"""
BASELINE_PROBE = {
    "import_code": "import boto3, aws_lambda_powertools",
    "clients_code": "import os; dynamodb = boto3.session.Session().client('dynamodb')",
    "request_code": (
        "dynamodb.get_item(TableName=os.environ['API_KEYS_TABLE'], Key={'key_hash': {'S': 'none'}})"
        "['ResponseMetadata']['HTTPStatusCode']"
    ),
}
HANDLER_CLIENTS = (
    "from tensorgate.adapters.aws import client\nfor service in ('dynamodb', 's3', 'sqs'):\n    client(service)"
)


@dataclass
class Subject:
    """One row: a handler module and the request it serves first (`event` builds a fresh event per run)."""

    module: str
    request: str
    event: Callable[[], dict[str, Any]]
    expected_status: int

    @property
    def function(self) -> str:
        return self.module.split(".")[1]

    def probe(self) -> str:
        # An API answer carries its status; a queue handler's is 200 when no record failed.
        status = "response['statusCode']" if "_api." in self.module else "500 if response['batchItemFailures'] else 200"
        return PROBE.format(
            function=self.function,
            import_code=f"import {self.module} as handler_module",
            clients_code=HANDLER_CLIENTS,
            request_code=f"(lambda response: {status})(handler_module.handler(event, Context()))",
            heavy=HEAVY_MODULES,
        )


def baseline_probe() -> str:
    return PROBE.format(function="baseline", heavy=HEAVY_MODULES, **BASELINE_PROBE)


def handler_modules() -> list[str]:
    """The API handlers (`functions/*_api/app.py`) and the dead-letter handler: each needs a row."""
    paths = sorted(REPO_ROOT.glob("functions/*_api/app.py")) + [REPO_ROOT / "functions/dead_letter_handler/app.py"]
    return [".".join(path.relative_to(REPO_ROOT).with_suffix("").parts) for path in paths if path.exists()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """The template's resources in moto's server, a development key, a ready network, pending tasks."""

    def __init__(self) -> None:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer
        from tensorgate_local.gateway import Gateway
        from tensorgate_local.lambdas import LocalFunctions
        from tensorgate_local.resources import create_all
        from tensorgate_local.template import Template

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # the seeding requests, in this process
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.environment = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        os.environ.update(self.environment)
        template = Template(parameters={"ApiKeyPepper": PEPPER})
        template.endpoint = self.environment["AWS_ENDPOINT_URL"]
        create_all(template, boto3.session.Session())
        functions = template.functions()
        for function in functions.values():
            self.environment |= function.environment
        os.environ.update(self.environment)
        self.events = load_event_builder()
        self.gateway = Gateway(template, LocalFunctions(functions))
        self.routes = template.routes()

        from tensorgate import wiring

        wiring.reset()
        wiring.auth_service().create_key("dev", self.events.DEV_KEY)
        self.network_id = self.ready_network()
        self.image = solid_png()

    def api_event(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.events.build_event(self.gateway, self.routes, spec, "cold-start-bench"))

    def request(self, spec: dict[str, Any]) -> dict[str, Any]:
        from tensorgate_local.lambdas import LocalContext

        module = spec["path"].split("/")[2]
        handler = {"networks": "networks_api", "tasks": "tasks_api"}[module]
        if spec["path"].endswith("/inference"):
            handler = "inference_api"
        imported = importlib.import_module(f"functions.{handler}.app")
        response: dict[str, Any] = imported.handler(self.api_event(spec), LocalContext(handler, 29))
        return response

    def ready_network(self) -> int:
        from tensorgate import wiring
        from tensorgate.models import NetworkStatus

        created = self.request(self.events.REQUESTS["networks_api/01_create_multipart.json"])
        network_id = int(json.loads(created["body"])["id"])
        service = wiring.network_service()
        record = service.get("dev", network_id)
        outputs = [{"name": "prob", "dtype": "float32", "shape": ["N", 4]}]
        ready = record.model_copy(update={"status": NetworkStatus.READY, "outputs": outputs, "version": 2})
        service._networks.replace(ready, expected_version=record.version)
        return network_id

    def inference_spec(self) -> dict[str, Any]:
        body = {"inputs": [{"image": {"source": base64.b64encode(self.image).decode()}}]}
        return {
            "method": "POST",
            "path": f"/v0.7/networks/{self.network_id}/inference",
            "content_type": "application/json",
            "body": json.dumps(body).encode(),
        }

    def pending_inference(self) -> int:
        """Queue an inference: a pending task the dead-letter handler can end (no worker serves the queue)."""
        response = self.request(self.inference_spec())
        return int(json.loads(response["body"])["task_id"])

    def dead_letter_event(self) -> dict[str, Any]:
        task_id = self.pending_inference()
        body = json.dumps({"task_id": task_id, "account_id": "dev", "network_id": self.network_id})
        record = {
            "messageId": f"dead-letter-{task_id}",
            "receiptHandle": "receipt",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "3"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:InferenceDeadLetterQueue",
            "awsRegion": "us-east-1",
        }
        return {"Records": [record]}

    def stop(self) -> None:
        self.server.stop()


def solid_png() -> bytes:
    from PIL import Image  # in the bench's own process only

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def load_event_builder() -> Any:
    """events/make_events.py: the requests behind events/ and the gateway's own event builder."""
    spec = importlib.util.spec_from_file_location("make_events", REPO_ROOT / "events" / "make_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subjects(stack: Stack) -> list[Subject]:
    requests = stack.events.REQUESTS
    api = stack.api_event
    return [
        Subject("functions.docs_api.app", "GET /v0.7/docs", lambda: api({"method": "GET", "path": "/v0.7/docs"}), 200),
        Subject(
            "functions.docs_api.app",
            "GET /v0.7/openapi.json",
            lambda: api(requests["docs_api/01_openapi_document.json"]),
            200,
        ),
        Subject("functions.inference_api.app", "POST inference (base64)", lambda: api(stack.inference_spec()), 200),
        Subject(
            "functions.networks_api.app",
            "POST /v0.7/networks (multipart)",
            lambda: api(requests["networks_api/01_create_multipart.json"]),
            201,
        ),
        Subject(
            "functions.networks_api.app",
            "GET /v0.7/networks/{id}",
            lambda: api({"method": "GET", "path": f"/v0.7/networks/{stack.network_id}/"}),
            200,
        ),
        Subject("functions.tasks_api.app", "GET /v0.7/tasks/{id}", lambda: api(requests["tasks_api/01_get.json"]), 200),
        Subject(
            "functions.recognition_api.app",
            "POST /v0.7/recognition/specs",
            lambda: api(requests["recognition_api/01_create_spec.json"]),
            201,
        ),
        Subject(
            "functions.endpoints_api.app",
            "GET /v0.7/endpoints",
            lambda: api({"method": "GET", "path": "/v0.7/endpoints/"}),
            200,
        ),
        Subject("functions.dead_letter_handler.app", "inference dead letter", stack.dead_letter_event, 200),
    ]


def lambda_environment(pycache: str, stack: Stack) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_")) and name != "PYTHONDONTWRITEBYTECODE"
    }
    return (
        environment
        | stack.environment
        | {
            "PYTHONPATH": os.pathsep.join(SOURCE_ROOTS),
            "PYTHONPYCACHEPREFIX": pycache,
            "LAMBDA_TASK_ROOT": str(REPO_ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "cold-start-bench",
            "POWERTOOLS_SERVICE_NAME": "tensorgate",
            "POWERTOOLS_METRICS_NAMESPACE": "Tensorgate",
        }
    )


def run_once(probe: str, event: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        input=json.dumps(event),
        env=environment,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"probe failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per row (median taken; at least 5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a handler misses the ratio goal")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    stack = Stack()
    try:
        rows = subjects(stack)
        results: dict[int, list[dict[str, Any]]] = {index: [] for index in range(-1, len(rows))}
        with tempfile.TemporaryDirectory(prefix="tensorgate-pycache-") as pycache:
            environment = lambda_environment(pycache, stack)
            probes = {-1: baseline_probe()} | {index: row.probe() for index, row in enumerate(rows)}
            events: dict[int, Callable[[], dict[str, Any]]] = {-1: dict} | {
                index: row.event for index, row in enumerate(rows)
            }
            for index, probe in probes.items():  # compile the bytecode once; not measured
                run_once(probe, events[index](), environment)
            for _ in range(runs):
                for index, probe in probes.items():
                    results[index].append(run_once(probe, events[index](), environment))
    finally:
        stack.stop()

    def median(index: int, key: str) -> float:
        return statistics.median(result[key] for result in results[index]) * 1000

    base_import, base_first = median(-1, "import"), median(-1, "first")
    width = max(len(f"{row.module} {row.request}") for row in rows)
    print(f"Cold start: CPU ms in a fresh interpreter, median of {runs} runs (goal <= {GOAL_RATIO}x baseline)")
    print(f"{'handler and first request':<{width}}  import  ratio  first request  ratio  wall ms  verdict")
    baseline = "baseline: boto3, aws_lambda_powertools; GetItem"
    base_wall = median(-1, "first_wall")
    print(f"{baseline:<{width}}  {base_import:6.1f}  {1:5.2f}  {base_first:13.1f}  {1:5.2f}  {base_wall:7.1f}")
    failures, heavy_found = 0, False
    for index, row in enumerate(rows):
        statuses = {result["status"] for result in results[index]}
        loaded = sorted({module for result in results[index] for module in result["heavy"]})
        ratio, first_ratio = median(index, "import") / base_import, median(index, "first") / base_first
        reasons = [f"over {GOAL_RATIO}x"] if max(ratio, first_ratio) > GOAL_RATIO else []
        reasons += [f"imports {', '.join(loaded)}"] if loaded else []
        reasons += [f"answered {sorted(statuses)}"] if statuses != {row.expected_status} else []
        verdict = "FAIL" if reasons else "PASS"
        failures += verdict == "FAIL"
        heavy_found |= bool(loaded)
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        print(
            f"{row.module + ' ' + row.request:<{width}}  {median(index, 'import'):6.1f}  {ratio:5.2f}  "
            f"{median(index, 'first'):13.1f}  {first_ratio:5.2f}  {median(index, 'first_wall'):7.1f}  {verdict}{detail}"
        )
    checked = ", ".join(HEAVY_MODULES)
    print(f"{len(rows) - failures} of {len(rows)} first requests PASS; heavy modules checked: {checked}")
    unmeasured = sorted(set(handler_modules()) - {row.module for row in rows})
    for module in unmeasured:
        print(f"NOT MEASURED: {module} has no first request here; add a Subject for it")
    failures += len(unmeasured)
    if heavy_found or (args.strict and failures):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
