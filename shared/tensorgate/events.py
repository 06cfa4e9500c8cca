"""Reading the S3 event notifications that arrive as SQS message bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus


def s3_keys(body: str) -> list[str]:
    """Object keys of an S3 notification body, URL-decoded; [] for S3's test event or other bodies."""
    try:
        message: Any = json.loads(body)
    except ValueError:
        return []
    if not isinstance(message, dict):
        return []
    keys = []
    for record in message.get("Records") or []:
        if record.get("eventSource") == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated"):
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
    return keys
