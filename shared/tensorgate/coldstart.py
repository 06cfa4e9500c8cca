"""A Lambda sandbox's cold start without cyclic garbage collection: loading the modules, serving the first request.

Importing botocore, Powertools and pydantic and building the first request's validators allocates
hundreds of thousands of objects and frees almost none, yet the collector kept walking them: about a
third of a cold request's CPU time (bench/cold_start.py). A handler module calls `pause()` before its
other imports and `resume()` once its first request is answered. Collection then comes back, with
everything alive so far frozen (kept out of the collector's passes: modules, clients and validators
live as long as the sandbox anyway). Outside a Lambda sandbox (tests, the local stack) both do nothing.
"""

from __future__ import annotations

import gc
import os

_paused = False


def pause() -> None:
    global _paused
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
