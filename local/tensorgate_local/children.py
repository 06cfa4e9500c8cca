"""The local stack's child processes: the embedded AWS, the inference worker, a function's SQS pollers (the converter).

`python -m tensorgate_local.children aws --port N` serves moto's emulation of the template's resources;
`python -m tensorgate_local.children worker` runs the worker container's entry point;
`python -m tensorgate_local.children poll Converter` feeds the function from its queues as Lambda's event
source mapping does. Both reach the embedded AWS through AWS_ENDPOINT_URL like any other client, and end
when their parent (`tensorgate-dev`) is gone, so a stack killed outright leaves no process behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger("local")
PARENT_CHECK_SECONDS = 1.0
PARENT_VARIABLE = "TENSORGATE_LOCAL_PARENT_PID"
# After SIGTERM, a function's poller may finish the event in hand for this long (a conversion can
# take minutes; Lambda would not wait either once its own timeout passed).
POLLER_STOP_SECONDS = 5.0


def watch_parent(grace_seconds: float = 10.0) -> None:
    """SIGTERM this process when its parent dies, and leave outright if that does not end it in time."""
    # The parent names itself: one that died before this line ran would otherwise go unnoticed.
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


class SerialDynamoDB:
    """moto's DynamoDB, one request at a time, as atomic as DynamoDB's own.

    moto serves each request in a thread of its own, and its DynamoDB updates are Python read-modify-writes:
    two `ADD` on one counter at once can lose one, and a transaction that fails puts back a copy of the whole
    table taken when it began, dropping what other requests wrote meanwhile. Serialising DynamoDB's requests
    (only those: SQS long polls must not wait behind each other) gives the local stack DynamoDB's guarantees
    (an id counter never hands out one id twice, a conditional write never loses a concurrent one).
    """

    def __init__(self, application: Any) -> None:
        self._application = application
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._application(environ, start_response)
        with self._lock:
            # The body is produced inside the lock: moto reads the table while serialising its answer.
            return list(self._application(environ, start_response))


def remembering_dispatcher() -> Any:
    """moto's dispatcher, its host → service lookup remembered per host.

    For every request moto lists its own package's folders from disk and tries its services' URL patterns
    one by one to learn which service a host name belongs to: a tenth of the embedded AWS's time under load,
    for an answer that never changes while it runs. Only the emulator's own work is saved; every AWS call
    the functions make is still served.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class RememberingDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return RememberingDispatcher()


def run_aws(host: str, port: int) -> int:
    """moto's server: the embedded AWS, in a process of its own so that it runs beside the handlers."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    from tensorgate_local.sqs_emulation import atomic_deletes

    atomic_deletes()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call otherwise
    application = SerialDynamoDB(remembering_dispatcher())
    server = make_server(host, port, application, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="aws", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


def run_worker() -> int:
    from functions.worker import main as worker_main

    return worker_main.main()


def run_pollers(function: str) -> int:
    import boto3

    from tensorgate_local.lambdas import LocalFunctions
    from tensorgate_local.pollers import QueuePoller
    from tensorgate_local.template import Template

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    template = Template()
    template.endpoint = os.environ["AWS_ENDPOINT_URL"]
    sources = [source for source in template.queue_sources() if source.function == function]
    if not sources:
        log.error("%s has no SQS event source in template.yaml", function)
        return 2
    # The functions' environment (tables, queues, the pepper given to the stack) is the parent's, inherited.
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        log.info("%s pollers received %s, stopping", function, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    functions = LocalFunctions(template.functions())
    sqs = boto3.session.Session().client("sqs")
    pollers = [QueuePoller(source, template, functions, sqs, stop) for source in sources]
    for poller in pollers:
        poller.start()
    log.info("%s polling %s", function, ", ".join(source.queue for source in sources))
    stop.wait()
    deadline = time.monotonic() + POLLER_STOP_SECONDS
    for poller in pollers:
        poller.join(timeout=max(0.0, deadline - time.monotonic()))
    sys.stdout.flush()
    # A conversion still running is abandoned, as a Lambda past its timeout is: its message comes back
    # after the visibility timeout. Skipping interpreter teardown keeps TensorFlow's threads from delaying exit.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tensorgate_local.children", description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    aws = roles.add_parser("aws", help="the embedded AWS (moto's server)")
    aws.add_argument("--host", default="127.0.0.1")
    aws.add_argument("--port", type=int, required=True)
    roles.add_parser("worker", help="the inference worker (functions/worker/main.py)")
    poll = roles.add_parser("poll", help="a function fed by its SQS event sources in template.yaml")
    poll.add_argument("function", help="the function's logical id, e.g. Converter")
    args = parser.parse_args(argv)
    watch_parent()
    if args.role == "aws":
        return run_aws(args.host, args.port)
    if args.role == "worker":
        return run_worker()
    return run_pollers(args.function)


if __name__ == "__main__":
    raise SystemExit(main())
