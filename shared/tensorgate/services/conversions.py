"""Deploying an upload: fetch the files, convert and check them, record the outcome exactly once."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tensorgate import layout
from tensorgate.config import DEFAULT_CONVERSION_CLAIM_SECONDS
from tensorgate.errors import ConcurrentUpdate, ConversionRejected, NetworkNotFound
from tensorgate.models import Network, NetworkStatus, Task, TaskStatus, utc_now
from tensorgate.ports import NetworkRepository, TaskRepository

log = logging.getLogger(__name__)
# A claim older than the converter's timeout belongs to a converter that died: take it over.
# Functions pass CONVERSION_CLAIM_SECONDS from their settings (see `wiring`); this is its default.
CLAIM_EXPIRY = timedelta(seconds=DEFAULT_CONVERSION_CLAIM_SECONDS)


@dataclass
class ConversionOutcome:
    model_files: list[Path]  # model.onnx first, then any external-data files beside it
    report: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    preprocessing: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The files the network declares (mean files), found in the upload: stored beside the model.
    declared_files: list[Path] = field(default_factory=list)


class ConversionInProgress(Exception):
    """Another converter holds a live claim on this network: retry the message later."""


class Converter(Protocol):
    def __call__(self, source_dir: Path, output_dir: Path, network: Network) -> ConversionOutcome: ...


class ModelFiles(Protocol):
    def get(self, key: str) -> bytes: ...
    def download(self, key: str, path: str) -> None: ...
    def upload(self, path: str, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...


class ConversionService:
    def __init__(
        self,
        networks: NetworkRepository,
        tasks: TaskRepository,
        files: ModelFiles,
        converter: Converter | None = None,
        clock: Callable[[], datetime] = utc_now,
        claim_expiry: timedelta = CLAIM_EXPIRY,
    ) -> None:
        self._networks = networks
        self._tasks = tasks
        self._files = files
        self._converter = converter
        self._clock = clock
        self._claim_expiry = claim_expiry

    def handle_upload(self, key: str) -> str:
        """Deploy the network an uploaded manifest or archive belongs to; returns what happened."""
        if self._converter is None:
            raise RuntimeError("this ConversionService was built without a converter")
        parsed = layout.parse_upload_key(key)
        if parsed is None:
            return "ignored: not an upload key"
        account_id, network_id, rest = parsed
        is_manifest = rest == f"files/{layout.MANIFEST_NAME}"
        is_archive = rest.startswith("archive/") and rest.endswith(layout.ARCHIVE_SUFFIXES)
        if not (is_manifest or is_archive):
            return "ignored: neither a manifest nor an archive"
        network = self._networks.get(account_id, network_id)
        if network is None:
            return "ignored: the network was deleted"
        if network.status is not NetworkStatus.PENDING:
            return f"ignored: already {network.status.value} (a duplicate event)"
        claimed = self._claim(network)
        if claimed is None:
            # Failing the message (rather than dropping it) means it comes back: by then the other
            # converter has finished, or its claim has expired and this one takes over.
            raise ConversionInProgress(f"network {network_id} is being converted by another worker")

        with tempfile.TemporaryDirectory(prefix="tensorgate-convert-") as workdir:
            source_dir = Path(workdir, "source")
            output_dir = Path(workdir, "output")
            source_dir.mkdir()
            output_dir.mkdir()
            try:
                self._fetch(claimed, key, is_manifest, source_dir)
                outcome = self._converter(source_dir, output_dir, claimed)
            except ConversionRejected as rejection:
                self._fail(claimed, rejection.message, rejection.report)
                return f"error: {rejection.message}"
            except BaseException:
                # A crash: release the claim so the redelivered message can retry at once.
                self._update_network(claimed, {"conversion_claimed_at": None})
                raise
            return self._succeed(claimed, outcome)

    def claim_is_live(self, network: Network) -> bool:
        claim = network.conversion_claimed_at
        return claim is not None and self._clock() - claim < self._claim_expiry

    def _claim(self, network: Network) -> Network | None:
        if self.claim_is_live(network):
            return None
        claimed = network.model_copy(update={"conversion_claimed_at": self._clock(), "version": network.version + 1})
        try:
            self._networks.replace(claimed, expected_version=network.version)
        except (ConcurrentUpdate, NetworkNotFound):
            return None
        return claimed

    def _fetch(self, network: Network, key: str, is_manifest: bool, source_dir: Path) -> None:
        if not is_manifest:
            self._files.download(key, str(source_dir / key.rsplit("/", 1)[1]))
            return
        manifest = json.loads(self._files.get(key))
        for name in manifest["files"]:
            if layout.check_file_name(name) is not None:  # the API refused these; never trust a stored name
                raise ConversionRejected(f"Refused stored file name {name!r}.")
            target = source_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self._files.download(layout.file_key(network.account_id, network.network_id, name), str(target))

    def _succeed(self, network: Network, outcome: ConversionOutcome) -> str:
        prefix = layout.model_prefix(network.account_id, network.network_id)
        for path in outcome.model_files:
            self._files.upload(str(path), prefix + path.name)
        for path in outcome.declared_files:
            self._files.upload(str(path), layout.declared_file_key(network.account_id, network.network_id, path.name))
        changes: dict[str, Any] = {
            "status": NetworkStatus.READY,
            "inputs": outcome.inputs,
            "outputs": outcome.outputs,
            "conversion": outcome.report,
            "error": None,
        }
        if outcome.preprocessing is not None:
            changes["preprocessing"] = outcome.preprocessing
        if not self._update_network(network, changes, require_pending=True):
            # Deleted (or ended by the dead-letter handler) while converting: leave no orphan behind.
            self._files.delete_prefix(layout.model_prefix(network.account_id, network.network_id))
            return "ignored: the network was deleted during the conversion"
        self._finish_task(network, TaskStatus.SUCCESS, None, outcome.report)
        return "success"

    def _fail(self, network: Network, message: str, report: dict[str, Any]) -> None:
        changes = {"status": NetworkStatus.ERROR, "error": message, "conversion": report or None}
        if self._update_network(network, changes, require_pending=True):
            self._finish_task(network, TaskStatus.ERROR, message, report or None)

    def fail_pending(self, account_id: str, network_id: int, message: str) -> bool:
        """End a deploy whose messages kept failing (dead-letter queue); False when it already ended.

        Raises ConversionInProgress while a converter still holds a live claim, so the dead letter
        is retried until that conversion finishes or its claim expires: the task always ends.
        """
        network = self._networks.get(account_id, network_id)
        if network is None or network.status is not NetworkStatus.PENDING:
            return False
        if self.claim_is_live(network):
            raise ConversionInProgress(f"network {network_id} is still being converted")
        self._fail(network, message, {})
        return True

    def _update_network(self, network: Network, changes: dict[str, Any], require_pending: bool = False) -> bool:
        for _ in range(5):
            current = self._networks.get(network.account_id, network.network_id)
            if current is None:
                return False
            if require_pending and current.status is not NetworkStatus.PENDING:
                return False
            updated = current.model_copy(
                update=changes | {"update_date": self._clock(), "version": current.version + 1}
            )
            try:
                self._networks.replace(updated, expected_version=current.version)
                return True
            except ConcurrentUpdate:
                continue
            except NetworkNotFound:
                return False
        raise ConcurrentUpdate(f"Network {network.network_id} kept changing during the conversion.")

    def _finish_task(self, network: Network, status: TaskStatus, error: str | None, data: Any) -> None:
        task = self._tasks.get(network.task_id)
        if task is None:
            return
        finished = task.model_copy(
            update={"status": status, "error": error, "data": data, "update_date": self._clock()}
        )
        if not self._tasks.finish(finished):
            log.info("deploy task %s had already ended", task.task_id)


def fail_task(tasks: TaskRepository, task_id: int, message: str, clock: Callable[[], datetime] = utc_now) -> bool:
    """End one pending task with `message` (dead letters of the inference queue)."""
    task: Task | None = tasks.get(task_id)
    if task is None or task.status is not TaskStatus.PENDING:
        return False
    return tasks.finish(task.model_copy(update={"status": TaskStatus.ERROR, "error": message, "update_date": clock()}))
