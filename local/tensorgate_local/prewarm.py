"""Imported by the pool's fork server: what every function's first request would build, built once for all.

The AWS clients (botocore's service models and endpoint rules), the services `tensorgate.wiring` builds on
a handler's first request (with the adapters, models and schemas they import) and the pydantic validators
built here are inherited by every process forked afterwards, so a new process skips most of the cold start
its first request would pay (about a second of imports on this machine, paid under load when a pool grows),
and its siblings share those pages instead of each holding a copy. No connection is opened: a forked process
must not share a socket with its parent.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os

from pydantic import BaseModel

PRELOAD_VARIABLE = "TENSORGATE_LOCAL_PRELOAD"  # tensorgate_local.lambdas sets it: the modules to import first


def _subclasses(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for subclass in model.__subclasses__():
        found.append(subclass)
        found += _subclasses(subclass)
    return found


def _build_services() -> None:
    """Every service `tensorgate.wiring` caches (its builders that take no argument), from the functions'
    environment this process inherited; one that cannot be built is built by the first request, as before."""
    from tensorgate import wiring

    for name in dir(wiring):
        builder = getattr(wiring, name)
        if (
            callable(builder)
            and hasattr(builder, "cache_clear")
            and getattr(builder, "__module__", "") == wiring.__name__
        ):
            with contextlib.suppress(Exception):
                builder()


def prewarm() -> None:
    for module in filter(None, os.environ.get(PRELOAD_VARIABLE, "").split(",")):
        # A handler that cannot be imported fails in its own process, answering its events with 502.
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    with contextlib.suppress(Exception):
        from tensorgate.adapters import aws

        for service in ("dynamodb", "s3", "sqs"):
            aws.client(service)
    _build_services()
    for model in _subclasses(BaseModel):
        if model.__module__.startswith(("tensorgate", "functions")):
            with contextlib.suppress(Exception):  # a model that cannot build yet builds on first use, as before
                model.model_rebuild()
    gc.collect()
    gc.freeze()  # kept out of the collector's passes, so the children's collections do not copy these pages


prewarm()
