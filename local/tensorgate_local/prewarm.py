"""Imported last by the pool's fork server: what every function's first request would build, built once for all.

The AWS clients (botocore's service models and endpoint rules) and the pydantic validators built here are
inherited by every process forked afterwards, so a new process skips most of the cold start its first
request would pay, and its siblings share those pages instead of each holding a copy. No connection is
opened: a forked process must not share a socket with its parent.
"""

from __future__ import annotations

import contextlib
import gc

from pydantic import BaseModel


def _subclasses(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for subclass in model.__subclasses__():
        found.append(subclass)
        found += _subclasses(subclass)
    return found


def prewarm() -> None:
    from tensorgate.adapters import aws

    for service in ("dynamodb", "s3", "sqs"):
        aws.client(service)
    for model in _subclasses(BaseModel):
        if model.__module__.startswith(("tensorgate", "functions")):
            with contextlib.suppress(Exception):  # a model that cannot build yet builds on first use, as before
                model.model_rebuild()
    gc.collect()
    gc.freeze()  # kept out of the collector's passes, so the children's collections do not copy these pages


prewarm()
