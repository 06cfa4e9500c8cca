"""`make dev`: the whole service on this machine, no AWS account, no Docker.

moto's server holds the tables, bucket, queues and S3→SQS notifications of `template.yaml`;
an API Gateway emulation serves the template's routes with the same handlers; SQS pollers feed
the converter and the dead-letter handler; a CPU worker serves the inference queue.
The converter and the worker are child processes, supervised: they can die as a Lambda or an ECS
task does (their messages come back after the visibility timeout) and are started again.
State lives in memory and is gone when the stack stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server

from tensorgate_local.supervisor import ChildProcess, child_environment, stop_all

DEFAULT_PORT = 3000
DEFAULT_ACCOUNT = "dev"
# Functions fed by SQS that run in a child process of their own: the one a fault can take down mid-event.
CHILD_FUNCTIONS = ("Converter",)
# On SIGINT the children get this long to finish what they hold; the stack exits within 20 s.
CHILD_STOP_SECONDS = 8.0
AWS_STARTUP_SECONDS = 60
log = logging.getLogger("local")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalStack:
    url: str
    api_key: str
    aws_endpoint: str
    bucket: str
    stop_event: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)
    servers: list[Any] = field(default_factory=list)
    children: list[ChildProcess] = field(default_factory=list)
    aws: ChildProcess | None = None
    functions: Any = None  # the LocalFunctions serving the gateway and the in-process pollers

    def stop(self) -> None:
        stop_all(self.children, CHILD_STOP_SECONDS)
        self.stop_event.set()
        for server in self.servers:
            server.shutdown()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.functions is not None:
            self.functions.close()
        if self.aws is not None:  # last: the others may use it until they stop
            self.aws.stop(grace_seconds=3)


def configure_environment(aws_endpoint: str) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "tensorgate",
            "POWERTOOLS_METRICS_NAMESPACE": "Tensorgate",
        }
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines drown the stack's own logs
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")


def start(
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    with_workers: bool = True,
) -> LocalStack:
    """Start the stack (the gateway and the dead-letter poller in this process) and return once it serves requests."""
    from tensorgate_local.template import TEMPLATE_PATH

    # Handlers are named from the template's folder (`functions.networks_api.app`), as `sam local`
    # resolves CodeUri; a console script such as `tensorgate-dev` does not have that folder on sys.path.
    code_root = str(TEMPLATE_PATH.parent)
    if code_root not in sys.path:
        sys.path.insert(0, code_root)

    # werkzeug logs every request it serves; the gateway logs its own.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    aws_port = free_port()
    aws = ChildProcess(
        "aws",
        [sys.executable, "-m", "tensorgate_local.children", "aws", "--port", str(aws_port)],
        child_environment(code_root),
        cwd=code_root,
        restart=False,  # it holds the stack's state: a new one would be empty
    )
    aws.start()
    aws_endpoint = f"http://127.0.0.1:{aws_port}"
    _wait_for_port(aws_port, AWS_STARTUP_SECONDS)
    configure_environment(aws_endpoint)

    import boto3
    from tensorgate import wiring
    from tensorgate.config import DEVELOPMENT_PEPPER

    from tensorgate_local.gateway import Gateway
    from tensorgate_local.lambdas import LocalFunctions, processes_per_function
    from tensorgate_local.pollers import QueuePoller
    from tensorgate_local.resources import create_all
    from tensorgate_local.template import Template

    template = Template(parameters={"ApiKeyPepper": os.environ.get("API_KEY_PEPPER", DEVELOPMENT_PEPPER)})
    template.endpoint = aws_endpoint
    session = boto3.session.Session()
    create_all(template, session)
    functions = template.functions()
    for function in functions.values():
        os.environ.update(function.environment)
    wiring.reset()
    _, key = wiring.auth_service().create_key(DEFAULT_ACCOUNT, api_key)

    # Each function a pool of processes, as Lambda runs containers side by side; the pool's fork server
    # starts now, after this process's environment holds the embedded AWS and the functions' variables.
    local_functions = LocalFunctions(functions, processes=processes_per_function())
    local_functions.warm(sorted({route.function for route in template.routes()}))
    stop_event = threading.Event()
    server = make_server(host, port, Gateway(template, local_functions), threaded=True)
    stack = LocalStack(
        url=f"http://{host}:{server.server_port}",
        api_key=key,
        aws_endpoint=aws_endpoint,
        bucket=template.physical_name("ModelBucket"),
        stop_event=stop_event,
        aws=aws,
        functions=local_functions,
    )
    stack.servers.append(server)
    serve = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
    serve.start()
    stack.threads.append(serve)
    if with_workers:
        # The dead-letter handler stays in this process; the converter and the worker are children.
        sqs = session.client("sqs")
        for source in template.queue_sources():
            if source.function in CHILD_FUNCTIONS:
                continue
            poller = QueuePoller(source, template, local_functions, sqs, stop_event)
            poller.start()
            stack.threads.append(poller)
        stack.children.extend(_start_children(code_root, {source.function for source in template.queue_sources()}))
    return stack


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded AWS did not listen on port {port} within {seconds} s") from None
            time.sleep(0.05)


def _start_children(code_root: str, queue_functions: set[str]) -> list[ChildProcess]:
    """The converter's pollers and the inference worker (the same code as the GPU image), each a child process."""
    environment = child_environment(code_root)
    command = [sys.executable, "-m", "tensorgate_local.children"]
    children = [
        ChildProcess(function.lower(), [*command, "poll", function], environment, cwd=code_root)
        for function in CHILD_FUNCTIONS
        if function in queue_functions
    ]
    if os.path.exists(os.path.join(code_root, "functions", "worker", "main.py")):
        children.append(ChildProcess("worker", [*command, "worker"], environment, cwd=code_root))
    for child in children:
        child.start()
    return children


@contextmanager
def running(**options: Any) -> Iterator[LocalStack]:
    stack = start(**options)
    try:
        yield stack
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tensorgate-dev", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-workers", action="store_true", help="serve the API only (no converter, no worker)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("werkzeug", "botocore", "moto", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stack = start(
        port=args.port,
        api_key=os.environ.get("TENSORGATE_DEV_API_KEY"),
        host=args.host,
        with_workers=not args.no_workers,
    )
    stopped = threading.Event()

    def on_signal(signum: int, _: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"Tensorgate local stack ready\n  API:     {stack.url}/v0.7\n  API key: {stack.api_key}\n"
        f"  AWS:     {stack.aws_endpoint} (embedded; state is in memory and lost on exit)\n"
        f"  Operator commands: AWS_ENDPOINT_URL={stack.aws_endpoint} MODEL_BUCKET={stack.bucket} "
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 "
        ".venv/bin/tensorgate-admin --help\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stopped.wait()
    stack.stop()
    print("Tensorgate local stack stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
