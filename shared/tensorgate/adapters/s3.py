"""The model bucket as a blob store."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.errors import StorageUnavailable

DELETE_BATCH = 1000
MISSING_CODES = ("404", "NoSuchKey", "NotFound")


def _unavailable(error: ClientError, what: str) -> Exception:
    """S3 kept failing after botocore's retries (SlowDown, 5xx): the caller may retry later.

    A missing object is not an outage: callers that expect one check `error_code` on the ClientError,
    which is re-raised as it is.
    """
    if error_code(error) in MISSING_CODES:
        return error
    return StorageUnavailable(f"The file store could not {what} right now ({error_code(error)}); retry shortly.")


class S3BlobStore:
    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self._bucket = bucket
        self._s3 = s3 or client("s3")

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as error:
            raise StorageUnavailable(f"The file store refused a write ({error_code(error)}); retry shortly.") from None

    def get(self, key: str) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as error:
            raise _unavailable(error, "read a file") from None

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        """`size` bytes of the object from `offset` (an image inside a dataset's image shard)."""
        if size == 0:
            return b""
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")
            return bytes(response["Body"].read())
        except ClientError as error:
            raise _unavailable(error, "read a file") from None

    def download(self, key: str, path: str) -> None:
        try:
            self._s3.download_file(self._bucket, key, path)
        except ClientError as error:
            raise _unavailable(error, "read a file") from None

    def upload(self, path: str, key: str) -> None:
        try:
            self._s3.upload_file(path, self._bucket, key)
        except ClientError as error:
            raise _unavailable(error, "store a file") from None

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
            return True
        except ClientError as error:
            if error_code(error) in MISSING_CODES:
                return False
            raise _unavailable(error, "look up a file") from None

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except ClientError as error:
            raise _unavailable(error, "list files") from None
        return keys

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        try:
            for start in range(0, len(keys), DELETE_BATCH):
                batch = keys[start : start + DELETE_BATCH]
                self._s3.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
        except ClientError as error:
            raise _unavailable(error, "delete files") from None
        return len(keys)

    def copy_prefix(self, source: str, destination: str) -> int:
        keys = self.list_keys(source)
        try:
            for key in keys:
                self._s3.copy_object(
                    Bucket=self._bucket,
                    Key=destination + key.removeprefix(source),
                    CopySource={"Bucket": self._bucket, "Key": key},
                )
        except ClientError as error:
            raise _unavailable(error, "copy files") from None
        return len(keys)

    def presigned_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A POST bound to this one key, a size range and a short expiry."""
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return {"url": post["url"], "fields": post["fields"]}

    def presigned_get(self, key: str, expires_in: int) -> str:
        """A GET of this one object for a short while: how a caller downloads what it cannot list."""
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
        )
