"""The S3 layout of datasets: every key the datasets API and the dataset worker write is built here.

dataset-uploads/{account}/{dataset}/archive/{name}           the presigned-POST archive; its arrival starts extraction
dataset-uploads/{account}/{dataset}/labels/{attempt}/{name}  a retry's corrected label file; its arrival likewise
datasets/{account}/{dataset}/versions/{version}/items/{chunk}.jsonl   the version's manifest, CHUNK_ITEMS lines each
datasets/{account}/{dataset}/versions/{version}/images/{chunk}.bin    the images of that chunk, end to end
datasets/{account}/{dataset}/versions/{version}/errors.jsonl          the extraction's item errors (v1)
datasets/{account}/{dataset}/splits/{split}/{part}/{chunk}.jsonl     the manifest lines of a split's part
datasets/{account}/{dataset}/evaluations/{evaluation}/{name}         an evaluation's metrics.json and PNG plots
uploads/{account}/dataset-evaluations/{evaluation}/{n}               the part's images, one object each, as the
                                                                      batch job's prefix input (removed once scored)

Uploads live under their own prefix so that the worker's own writes under `datasets/` never notify the
dataset queue (S3 notifications filter by prefix and suffix only).
"""

from __future__ import annotations

import re

from tensorgate.layout import safe_account

UPLOADS = "dataset-uploads/"
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
LABEL_SUFFIXES = (".csv", ".jsonl", ".json")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def file_name_ok(name: str, suffixes: tuple[str, ...]) -> bool:
    return _SAFE_NAME.fullmatch(name) is not None and ".." not in name and name.lower().endswith(suffixes)


def upload_prefix(account_id: str, dataset_id: int) -> str:
    return f"{UPLOADS}{safe_account(account_id)}/{dataset_id}/"


def archive_key(account_id: str, dataset_id: int, name: str) -> str:
    return f"{upload_prefix(account_id, dataset_id)}archive/{name}"


def labels_key(account_id: str, dataset_id: int, attempt: int, name: str) -> str:
    return f"{upload_prefix(account_id, dataset_id)}labels/{attempt}/{name}"


def parse_upload_key(key: str) -> tuple[str, int] | None:
    """`dataset-uploads/{account}/{dataset}/...` → (account, dataset); None for any other key."""
    match = re.fullmatch(r"dataset-uploads/([@A-Za-z0-9_-]{1,64})/(\d{1,18})/(archive|labels)/.+", key)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def dataset_prefix(account_id: str, dataset_id: int) -> str:
    return f"datasets/{safe_account(account_id)}/{dataset_id}/"


def version_prefix(account_id: str, dataset_id: int, version: str) -> str:
    return f"{dataset_prefix(account_id, dataset_id)}versions/{version}/"


def items_chunk_key(prefix: str, chunk: int) -> str:
    """Chunk `chunk` of a manifest under `prefix` (a version's or a split part's)."""
    return f"{prefix}items/{chunk:06d}.jsonl"


def images_chunk_key(version_prefix: str, chunk: int) -> str:
    return f"{version_prefix}images/{chunk:06d}.bin"


def errors_key(account_id: str, dataset_id: int, version: str) -> str:
    return f"{version_prefix(account_id, dataset_id, version)}errors.jsonl"


def split_part_prefix(account_id: str, dataset_id: int, split_id: int, part: str) -> str:
    return f"{dataset_prefix(account_id, dataset_id)}splits/{split_id}/{part}/"


def evaluation_prefix(account_id: str, dataset_id: int, evaluation_id: int) -> str:
    return f"{dataset_prefix(account_id, dataset_id)}evaluations/{evaluation_id}/"
