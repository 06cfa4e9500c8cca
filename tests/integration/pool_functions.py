"""Handlers for the local stack's process pools to run in tests: they report their process and can misbehave."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`together`: wait (up to 20 s) until that many events are in hand at once, in `folder`, and say how many were."""
    action = event.get("action")
    if action == "raise":
        raise ValueError("the handler refused this event")
    if action == "die":
        os._exit(3)
    if action == "hang":
        time.sleep(60)
    seen = 0
    if action == "together":
        folder = Path(event["folder"])
        (folder / f"{os.getpid()}-{event['number']}").touch()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = len(list(folder.iterdir()))
            if seen >= event["together"]:
                break
            time.sleep(0.01)
    return {"pid": os.getpid(), "seen": seen, "function": context.function_name}
