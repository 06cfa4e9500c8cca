"""The presigned POST a JSON create returns: one key, a size range, a short expiry (S3 enforces its policy)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY


def signed_policy(api: Client, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    created = api.post("/v0.7/networks", headers={"X-API-KEY": DEV_KEY}, json={"name": "n", **body}).json
    upload = created["upload"]
    return upload, json.loads(base64.b64decode(upload["fields"]["policy"]))


def test_presigned_post_is_bound_to_one_key_a_size_range_and_a_short_expiry(api: Client) -> None:
    upload, policy = signed_policy(api, archive_name="weights.tar.gz")
    conditions = policy["conditions"]
    assert {"key": upload["key"]} in conditions and upload["key"].endswith("/archive/weights.tar.gz")
    [size_range] = [c for c in conditions if isinstance(c, list) and c[0] == "content-length-range"]
    assert size_range[1] >= 1 and size_range[2] == upload["max_bytes"]
    # No "starts-with" condition: the uploader cannot choose another key.
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expires - datetime.now(UTC) <= timedelta(seconds=upload["expires_in"] + 5) <= timedelta(minutes=16)


def test_bucket_denies_plain_http_and_blocks_public_access(aws: dict[str, Any]) -> None:
    properties = aws["template"].resources
    policy = properties["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "s3:*"
    block = properties["ModelBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())
