"""Schemathesis hooks of the fuzz run (tests/e2e/test_fuzz.py): the networks it relies on are never deleted."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import schemathesis

# Far above what the id counter reaches in a run, so ids generated for other operations never meet them.
READY_NETWORK_ID = 900_000_001
PENDING_NETWORK_ID = 900_000_002
# The counter starts at 1: no network ever has this id.
NO_NETWORK_ID = 0
# The environment variable naming the spec, version and endpoint the run relies on:
# `{"spec_id": N, "version_id": M, "endpoint_id": E}`.
KEPT_RECOGNITION = "TENSORGATE_FUZZ_KEPT_RECOGNITION"
# The environment variable holding `{"spec_id": N, "network_id": M, "post_processings": [...]}`, a version body
# the stack accepts. A generated version body hardly ever names an existing spec and a ready network: every
# other one is pointed at these, and every fourth one also gets the post-processings that bind them, so the
# run creates versions, and reads and deletes versions that exist.
VERSION_BINDING = "TENSORGATE_FUZZ_VERSION_BINDING"
_version_creates = itertools.count()


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    # Schemathesis reuses ids it has seen in answers; a DELETE of a kept network would leave the
    # inference operation nothing to reach for the rest of the run. It still gets sent, to no network.
    kept = {str(READY_NETWORK_ID), str(PENDING_NETWORK_ID)}
    if case.method.upper() == "DELETE" and str((case.path_parameters or {}).get("network_id")) in kept:
        case.path_parameters["network_id"] = NO_NETWORK_ID
    # The same for the recognition spec and version the run relies on (the counters start at 1: 0 is no one's).
    # And the endpoint (a shutdown would end its predictions just as a delete would).
    kept_recognition = json.loads(os.environ.get(KEPT_RECOGNITION) or "{}")
    ending = case.method.upper() == "DELETE" or case.path.endswith("/shutdown")
    for name, kept_id in kept_recognition.items():
        if ending and str((case.path_parameters or {}).get(name)) == str(kept_id):
            case.path_parameters[name] = 0
    binding = json.loads(os.environ.get(VERSION_BINDING) or "null")
    creates_a_version = case.method.upper() == "POST" and case.path.rstrip("/").endswith("/recognition/versions")
    if binding and creates_a_version and isinstance(case.body, dict):
        turn = next(_version_creates)
        if turn % 2 == 0:
            case.body.update(spec_id=binding["spec_id"], network_id=binding["network_id"])
        if turn % 4 == 0:
            case.body["post_processings"] = binding["post_processings"]
