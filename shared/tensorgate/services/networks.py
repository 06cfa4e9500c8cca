"""Registering, listing, renaming, publishing and deleting networks."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tensorgate import layout
from tensorgate.errors import (
    ConcurrentUpdate,
    DuplicateSlug,
    ImmutableField,
    InvalidFileName,
    MissingModelFile,
    NetworkNotFound,
    PayloadTooLarge,
    UnknownField,
    ValidationFailed,
)
from tensorgate.forms import UploadedFile, decode_json_fields
from tensorgate.listing import ListQuery, to_page
from tensorgate.models import (
    PUBLIC_ACCOUNT,
    Network,
    Page,
    Task,
    TaskKind,
    utc_now,
)
from tensorgate.ports import BlobStore, IdAllocator, NetworkRepository, TaskRepository
from tensorgate.schemas import (
    JSON_FIELDS,
    MUTABLE_FIELDS,
    READ_ONLY_FIELDS,
    CreateNetwork,
    UpdateNetwork,
    validate,
)

MODEL_FILE_SUFFIXES = (
    ".pb",
    ".pbtxt",
    ".keras",
    ".h5",
    ".hdf5",
    ".tflite",
    ".onnx",
    ".pt",
    ".pth",
    ".pt2",
    ".prototxt",
    *layout.ARCHIVE_SUFFIXES,
)
DEFAULT_ARCHIVE_NAME = "model.zip"
MAX_FILES = 64
UPDATE_ATTEMPTS = 8
# DynamoDB holds 400 KB per item, and a network's record later takes its conversion's report too.
MAX_RECORD_BYTES = 256 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    max_file_bytes: int = 6 * 1024**2
    max_archive_bytes: int = 5 * 1024**3
    presigned_upload_seconds: int = 900
    task_ttl_days: int = 30


@dataclass
class CreatedNetwork:
    network: Network
    upload: dict[str, Any] | None = field(default=None)

    def to_wire(self) -> dict[str, Any]:
        body = self.network.to_wire()
        if self.upload is not None:
            body["upload"] = self.upload
        return body


class NetworkService:
    def __init__(
        self,
        networks: NetworkRepository,
        tasks: TaskRepository,
        ids: IdAllocator,
        blobs: BlobStore,
        policy: UploadPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        pause: Callable[[float], None] = time.sleep,
        on_delete: Callable[[str, int], None] | None = None,
    ) -> None:
        self._networks = networks
        self._on_delete = on_delete
        self._tasks = tasks
        self._ids = ids
        self._blobs = blobs
        self._policy = policy or UploadPolicy()
        self._clock = clock
        self._pause = pause

    # -- create -------------------------------------------------------------------------------

    def create(
        self, account_id: str, fields: dict[str, Any], files: list[UploadedFile], author: str | None = None
    ) -> CreatedNetwork:
        """Validate everything first, so a refused create writes nothing; then records, files, manifest.
        `author` is the name the caller's API key was issued to."""
        request: CreateNetwork = validate(CreateNetwork, decode_json_fields(fields, JSON_FIELDS), "network")
        self._check_files(request, files)
        _check_record_size(request)
        archive_name = None
        if not files:
            archive_name = request.archive_name or DEFAULT_ARCHIVE_NAME
            if not layout.archive_name_ok(archive_name):
                raise ValidationFailed(
                    f"archive_name {archive_name!r} must be a plain file name ending in .zip, .tar.gz or .tgz.",
                    [{"field": "archive_name", "message": "must end in .zip, .tar.gz or .tgz"}],
                )
        elif request.archive_name is not None:
            raise ValidationFailed(
                "archive_name is only for a JSON create; a multipart create sends its files directly.",
                [{"field": "archive_name", "message": "is only for a JSON create"}],
            )

        network_id = self._ids.next_id("network")
        task_id = self._ids.next_id("task")
        now = self._clock()
        network = Network(
            account_id=account_id,
            network_id=network_id,
            name=request.name,
            description=request.description,
            metadata=request.metadata,
            framework=request.framework.value,
            preprocessing=_dump(request.preprocessing),
            postprocessings=[_dump(item) for item in request.postprocessings],
            input_spec=None if request.input_spec is None else [_dump(t) for t in request.input_spec],
            output_spec=None if request.output_spec is None else [_dump(t) for t in request.output_spec],
            conversion_options=request.conversion_options.model_dump(exclude_none=True),
            task_id=task_id,
            files=sorted(file.name for file in files) if files else [],
            upload_prefix=layout.network_prefix(account_id, network_id),
            create_date=now,
            update_date=now,
            author=author,
        )
        task = self._new_task(account_id, task_id, TaskKind.DEPLOY, network_id, now)
        self._networks.put_new(network)
        self._tasks.put_new(task)
        try:
            if files:
                for file in files:
                    self._blobs.put(layout.file_key(account_id, network_id, file.name), file.content)
                self._blobs.put(
                    layout.manifest_key(account_id, network_id),
                    json.dumps(self._manifest(network)).encode(),
                    "application/json",
                )
                return CreatedNetwork(network)
            assert archive_name is not None
            key = layout.archive_prefix(account_id, network_id) + archive_name
            upload = self._blobs.presigned_post(
                key, self._policy.max_archive_bytes, self._policy.presigned_upload_seconds
            )
            upload |= {
                "key": key,
                "max_bytes": self._policy.max_archive_bytes,
                "expires_in": self._policy.presigned_upload_seconds,
            }
            return CreatedNetwork(network, upload=upload)
        except BaseException:
            self._remove(network)
            raise

    def _check_files(self, request: CreateNetwork, files: list[UploadedFile]) -> None:
        if len(files) > MAX_FILES:
            raise ValidationFailed(f"A network takes at most {MAX_FILES} files; {len(files)} were sent.")
        names = set()
        for file in files:
            reason = layout.check_file_name(file.name)
            if reason is not None:
                raise InvalidFileName(f"Refused file: {reason}.", [{"field": file.name, "message": reason}])
            if file.name in names:
                raise InvalidFileName(f"File {file.name!r} is sent twice.")
            names.add(file.name)
            if not file.content:
                raise ValidationFailed(
                    f"File {file.name!r} is empty (0 bytes); send the file with its content, or leave it out.",
                    [{"field": file.name, "message": "is empty"}],
                )
            if len(file.content) > self._policy.max_file_bytes:
                raise PayloadTooLarge(
                    f"File {file.name!r} is {len(file.content)} bytes, over the {self._policy.max_file_bytes} "
                    "bytes a direct upload takes; create the network with a JSON body and upload the model "
                    "archive with the presigned POST it returns."
                )
        if files and not any(name.lower().endswith(MODEL_FILE_SUFFIXES) for name in names):
            raise MissingModelFile(
                "No model file was sent: include saved_model.pb (or .pbtxt) with its variables, a .keras, .h5, "
                ".tflite, .onnx or frozen .pb file, a Caffe deploy.prototxt with its .caffemodel, a PyTorch "
                "TorchScript .pt or torch.export .pt2 file, or a SavedModel archive (.zip, .tar.gz)."
            )
        if request.preprocessing is not None and files:
            for mean_file in request.preprocessing.mean_files():
                if mean_file not in names:
                    raise ValidationFailed(
                        f"mean_file {mean_file!r} was not uploaded with the network; send it as a file part "
                        f"named {mean_file!r}.",
                        [
                            {
                                "field": "preprocessing.inputs.image.mean_file",
                                "message": "names no uploaded file",
                            }
                        ],
                    )

    def _manifest(self, network: Network) -> dict[str, Any]:
        return {
            "account_id": network.account_id,
            "network_id": network.network_id,
            "task_id": network.task_id,
            "framework": network.framework,
            "files": network.files,
        }

    def _new_task(self, account_id: str, task_id: int, kind: TaskKind, network_id: int, now: datetime) -> Task:
        expires = now + timedelta(days=self._policy.task_ttl_days)
        return Task(
            task_id=task_id,
            account_id=account_id,
            kind=kind,
            network_id=network_id,
            create_date=now,
            update_date=now,
            expires_at=int(expires.timestamp()),
        )

    # -- read ---------------------------------------------------------------------------------

    def list(self, account_id: str, query: ListQuery) -> Page:
        return to_page(self._networks.page(account_id, query), query, Network.to_wire)

    def lookup(self, account_id: str, name: str) -> Network:
        """The newest network named exactly `name`."""
        network = self._networks.get_by_name(account_id, name)
        if network is None:
            raise NetworkNotFound(f"named {name!r}")
        return network

    def get(self, account_id: str, network_id: int) -> Network:
        network = self._networks.get(account_id, network_id)
        if network is None:
            raise NetworkNotFound(network_id)
        return network

    def list_public(self, query: ListQuery) -> Page:
        return self.list(PUBLIC_ACCOUNT, query)

    def get_public(self, slug: str) -> Network:
        network = self._networks.get_by_slug(slug)
        if network is None:
            raise NetworkNotFound(repr(slug))
        return network

    # -- update -------------------------------------------------------------------------------

    def update(self, account_id: str, network_id: int, changes: dict[str, Any]) -> Network:
        for name in changes:
            if name in READ_ONLY_FIELDS:
                raise ImmutableField(
                    f"Field {name!r} is immutable; only {', '.join(MUTABLE_FIELDS)} can be changed.",
                    [{"field": name, "message": "is immutable"}],
                )
            if name not in MUTABLE_FIELDS:
                raise UnknownField(
                    f"Field {name!r} is not a network field; only {', '.join(MUTABLE_FIELDS)} can be changed.",
                    [{"field": name, "message": "is not a known field"}],
                )
        request: UpdateNetwork = validate(UpdateNetwork, decode_json_fields(changes, {"metadata"}), "update")
        values = request.model_dump(exclude_unset=True)
        # Changes are field assignments, so re-applying them to a fresher copy is safe.
        for attempt in range(UPDATE_ATTEMPTS):
            network = self.get(account_id, network_id)
            updated = network.model_copy(update=values | {"update_date": self._clock(), "version": network.version + 1})
            _check_record_size(updated)
            try:
                self._networks.replace(updated, expected_version=network.version)
                return updated
            except ConcurrentUpdate:
                # Jittered backoff, so writers that collided do not collide again in lockstep.
                self._pause(random.uniform(0, 0.005 * 2**attempt))
        raise ConcurrentUpdate(f"Network {network_id} is being changed by another request; try again.")

    # -- delete -------------------------------------------------------------------------------

    def delete(self, account_id: str, network_id: int) -> None:
        """The network, then what is attached to it (its recognition versions)."""
        self._remove(self.get(account_id, network_id))
        if self._on_delete is not None:
            self._on_delete(account_id, network_id)

    def _remove(self, network: Network, delete_task: bool = True) -> None:
        """Records first, so nothing new is written under the prefixes, then the objects."""
        self._networks.delete(network.account_id, network.network_id)
        if delete_task:
            self._tasks.delete(network.task_id)
        self._blobs.delete_prefix(layout.network_prefix(network.account_id, network.network_id))
        self._blobs.delete_prefix(layout.model_prefix(network.account_id, network.network_id))

    # -- operator -----------------------------------------------------------------------------

    def publish(self, account_id: str, network_id: int, slug: str) -> Network:
        """Copy an account's network to the public catalogue under `slug` (read-only to accounts)."""
        if not _slug_ok(slug):
            raise ValidationFailed(f"Slug {slug!r} must be 3-64 lowercase letters, digits and dashes.")
        if self._networks.get_by_slug(slug) is not None:
            raise DuplicateSlug(f"A public network named {slug!r} already exists.")
        source = self.get(account_id, network_id)
        public_id = self._ids.next_id("network")
        now = self._clock()
        public = source.model_copy(
            update={
                "account_id": PUBLIC_ACCOUNT,
                "network_id": public_id,
                "slug": slug,
                "upload_prefix": layout.network_prefix(PUBLIC_ACCOUNT, public_id),
                "update_date": now,
                "create_date": now,
                "version": 1,
            }
        )
        self._blobs.copy_prefix(
            layout.network_prefix(account_id, network_id), layout.network_prefix(PUBLIC_ACCOUNT, public_id)
        )
        self._blobs.copy_prefix(
            layout.model_prefix(account_id, network_id), layout.model_prefix(PUBLIC_ACCOUNT, public_id)
        )
        self._networks.put_new(public)
        return public

    def unpublish(self, slug: str) -> None:
        # The public copy shares its deploy task with the account's network: keep that task.
        self._remove(self.get_public(slug), delete_task=False)


def _check_record_size(fields: CreateNetwork | Network) -> None:
    """Refused here, a record over the store's item size is a 413 the caller can act on, not a failed write."""
    size = len(fields.model_dump_json().encode())
    if size > MAX_RECORD_BYTES:
        raise PayloadTooLarge(
            f"The network's fields come to {size // 1024} KiB of JSON, over the {MAX_RECORD_BYTES // 1024} KiB a "
            "network holds; send fewer or shorter labels, or a smaller metadata or description."
        )


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json", exclude_none=True)


def _slug_ok(slug: str) -> bool:
    return re.fullmatch(r"[a-z0-9][a-z0-9-]{2,63}", slug) is not None
