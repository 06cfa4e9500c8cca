"""The S3 layout: every key the service writes is built here.

uploads/{account}/{network}/files/{file}          files sent with a multipart create
uploads/{account}/{network}/files/variables/{f}   SavedModel variables sent under variables/
uploads/{account}/{network}/files/manifest.json   written last; its arrival starts the conversion
uploads/{account}/{network}/archive/{name}        the presigned-POST archive (.zip, .tar.gz, .tgz)
models/{account}/{network}/model.onnx             the converted model
models/{account}/{network}/files/{file}           the files the network declares (mean files), copied
                                                  there by the converter from wherever they were uploaded
inputs/{account}/{task}/{n}                       inference inputs too large for a queue message
results/{account}/{task}.json                     inference results too large for a DynamoDB item
"""

from __future__ import annotations

import re

MANIFEST_NAME = "manifest.json"
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
MAX_FILE_NAME_LENGTH = 200
VARIABLES_DIRECTORY = "variables/"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def safe_account(account_id: str) -> str:
    """Accounts are validated at key creation; this guards the layout against a bad record."""
    if not re.fullmatch(r"[@A-Za-z0-9_-]{1,64}", account_id):
        raise ValueError(f"account id {account_id!r} is not usable in a storage key")
    return account_id


def network_prefix(account_id: str, network_id: int) -> str:
    return f"uploads/{safe_account(account_id)}/{network_id}/"


def upload_prefix(account_id: str) -> str:
    """Everything a caller may reference as `s3://` input lives under this prefix."""
    return f"uploads/{safe_account(account_id)}/"


def file_key(account_id: str, network_id: int, file_name: str) -> str:
    return f"{network_prefix(account_id, network_id)}files/{file_name}"


def manifest_key(account_id: str, network_id: int) -> str:
    return file_key(account_id, network_id, MANIFEST_NAME)


def archive_prefix(account_id: str, network_id: int) -> str:
    return f"{network_prefix(account_id, network_id)}archive/"


def model_prefix(account_id: str, network_id: int) -> str:
    return f"models/{safe_account(account_id)}/{network_id}/"


def model_key(account_id: str, network_id: int) -> str:
    return f"{model_prefix(account_id, network_id)}model.onnx"


def declared_file_key(account_id: str, network_id: int, file_name: str) -> str:
    """A file the network's declarations name, beside its converted model: what the worker reads."""
    return f"{model_prefix(account_id, network_id)}files/{file_name}"


def input_key(account_id: str, task_id: int, index: int) -> str:
    return f"inputs/{safe_account(account_id)}/{task_id}/{index}"


def result_key(account_id: str, task_id: int) -> str:
    return f"results/{safe_account(account_id)}/{task_id}.json"


def job_inputs_key(account_id: str, job_id: int) -> str:
    """A batch job's inputs in item order, written at its creation: what each line of its results names."""
    return f"jobs/{safe_account(account_id)}/{job_id}/inputs.json"


def job_results_key(account_id: str, job_id: int) -> str:
    return f"jobs/{safe_account(account_id)}/{job_id}/results.jsonl"


def job_archive_key(account_id: str, job_id: int, archive_name: str) -> str:
    """Where a job's archive of images is uploaded; its arrival (a bucket notification) starts the job."""
    return f"job-uploads/{safe_account(account_id)}/{job_id}/{archive_name}"


def parse_job_archive_key(key: str) -> tuple[str, int, str] | None:
    """`job-uploads/{account}/{job}/{name}` → (account, job, name); None for any other key."""
    match = re.fullmatch(r"job-uploads/([@A-Za-z0-9_-]{1,64})/(\d{1,18})/([^/]+)", key)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3)


def job_item_key(account_id: str, job_id: int, index: int) -> str:
    """An archive job's item `index`, as the worker reads it (under the account's inputs, which expire)."""
    return f"inputs/{safe_account(account_id)}/jobs/{job_id}/{index:05d}"


def job_items_prefix(account_id: str, job_id: int) -> str:
    return f"inputs/{safe_account(account_id)}/jobs/{job_id}/"


def parse_upload_key(key: str) -> tuple[str, int, str] | None:
    """`uploads/{account}/{network}/{rest}` → (account, network, rest); None for any other key."""
    match = re.fullmatch(r"uploads/([@A-Za-z0-9_-]{1,64})/(\d{1,18})/(.+)", key)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3)


def check_file_name(name: str) -> str | None:
    """The reason a file name is refused, or None when it is safe to store.

    Names are flat (`saved_model.pb`, `mean.npy`), except SavedModel variables, which may be
    sent as `variables/<name>`. No `..`, no absolute paths, no other separators.
    """
    if not name:
        return "a file name is empty"
    if len(name) > MAX_FILE_NAME_LENGTH:
        return f"file name {name[:40]!r}... is longer than {MAX_FILE_NAME_LENGTH} characters"
    if ".." in name:
        return f"file name {name!r} contains '..'"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return f"file name {name!r} is an absolute path"
    base = name.removeprefix(VARIABLES_DIRECTORY)
    if "/" in base or "\\" in base:
        return f"file name {name!r} contains a path separator (only 'variables/<name>' is allowed)"
    if not _SAFE_NAME.match(base):
        return f"file name {name!r} must start with a letter or digit and use only letters, digits, '.', '_' and '-'"
    if name == MANIFEST_NAME:
        return f"file name {MANIFEST_NAME!r} is reserved"
    return None


def archive_name_ok(name: str) -> bool:
    return check_file_name(name) is None and name.endswith(ARCHIVE_SUFFIXES) and "/" not in name
