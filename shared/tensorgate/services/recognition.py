"""Recognition specs (what a recognition answers) and versions (a spec bound to a network), DESIGN §7."""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tensorgate_preprocessing.spec import RecognitionPostProcessing

from tensorgate.errors import (
    ConcurrentUpdate,
    DuplicateSlug,
    ImmutableField,
    NetworkNotReady,
    NoCurrentVersion,
    RecognitionSpecNotFound,
    RecognitionVersionNotFound,
    UnknownField,
    ValidationFailed,
)
from tensorgate.forms import decode_json_fields
from tensorgate.listing import ListQuery, to_page
from tensorgate.messages import RecognitionPlan
from tensorgate.models import PUBLIC_ACCOUNT, NetworkStatus, Page, RecognitionSpec, RecognitionVersion, utc_now
from tensorgate.ports import IdAllocator, NetworkRepository, RecognitionRepository
from tensorgate.schemas import (
    SPEC_MUTABLE_FIELDS,
    SPEC_READ_ONLY_FIELDS,
    CreateRecognitionSpec,
    CreateRecognitionVersion,
    Roi,
    UpdateRecognitionSpec,
    validate,
)

UPDATE_ATTEMPTS = 8
SPEC_COUNTER = "recognition-spec"
VERSION_COUNTER = "recognition-version"
# Cascades read every version of a network or spec; no account holds more in practice.
ALL = 1_000_000


class RecognitionService:
    def __init__(
        self,
        recognition: RecognitionRepository,
        networks: NetworkRepository,
        ids: IdAllocator,
        clock: Callable[[], datetime] = utc_now,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = recognition
        self._networks = networks
        self._ids = ids
        self._clock = clock
        self._pause = pause

    # -- specs --------------------------------------------------------------------------------

    def create_spec(self, account_id: str, fields: dict[str, Any], author: str | None = None) -> RecognitionSpec:
        request: CreateRecognitionSpec = validate(
            CreateRecognitionSpec, decode_json_fields(fields, {"metadata", "outputs"}), "recognition spec"
        )
        now = self._clock()
        spec = RecognitionSpec(
            account_id=account_id,
            spec_id=self._ids.next_id(SPEC_COUNTER),
            name=request.name,
            description=request.description,
            metadata=request.metadata,
            outputs=[output.model_dump(mode="json") for output in request.outputs],
            create_date=now,
            update_date=now,
            author=author,
        )
        self._store.put_spec(spec)
        return spec

    def list_specs(self, account_id: str, query: ListQuery) -> Page:
        """`status` filters `ready` (a current version to run) or `pending` (none yet)."""
        return to_page(self._store.page_specs(account_id, query), query, RecognitionSpec.to_wire)

    def lookup_spec(self, account_id: str, name: str) -> RecognitionSpec:
        """The newest spec named exactly `name`."""
        spec = self._store.get_spec_by_name(account_id, name)
        if spec is None:
            raise RecognitionSpecNotFound(f"named {name!r}")
        return spec

    def get_spec(self, account_id: str, spec_id: int) -> RecognitionSpec:
        spec = self._store.get_spec(account_id, spec_id)
        if spec is None:
            raise RecognitionSpecNotFound(spec_id)
        return spec

    def list_public(self, query: ListQuery) -> Page:
        return self.list_specs(PUBLIC_ACCOUNT, query)

    def get_public(self, slug: str) -> RecognitionSpec:
        spec = self._store.get_spec_by_slug(slug)
        if spec is None:
            raise RecognitionSpecNotFound(repr(slug))
        return spec

    def update_spec(self, account_id: str, spec_id: int, changes: dict[str, Any]) -> RecognitionSpec:
        for name in changes:
            if name in SPEC_READ_ONLY_FIELDS:
                raise ImmutableField(
                    f"Field {name!r} is immutable; only {', '.join(SPEC_MUTABLE_FIELDS)} can be changed.",
                    [{"field": name, "message": "is immutable"}],
                )
            if name not in SPEC_MUTABLE_FIELDS:
                raise UnknownField(
                    f"Field {name!r} is not a recognition spec field; only {', '.join(SPEC_MUTABLE_FIELDS)} "
                    "can be changed.",
                    [{"field": name, "message": "is not a known field"}],
                )
        request: UpdateRecognitionSpec = validate(
            UpdateRecognitionSpec, decode_json_fields(changes, {"metadata"}), "update"
        )
        values = request.model_dump(exclude_unset=True)
        current = values.get("current_version_id")
        if current is not None:
            version = self._store.get_version(account_id, current)
            if version is None or version.spec_id != spec_id:
                raise ValidationFailed(
                    f"current_version_id {current} is not a version of recognition spec {spec_id}; list its "
                    f"versions at /v0.7/recognition/specs/{spec_id}/versions/.",
                    [{"field": "current_version_id", "message": "is not a version of this spec"}],
                )
        return self._change_spec(account_id, spec_id, lambda _: values)

    def _change_spec(
        self, account_id: str, spec_id: int, change: Callable[[RecognitionSpec], dict[str, Any] | None]
    ) -> RecognitionSpec:
        """Apply `change` (field values, or None for nothing to do) to the freshest copy, retrying on a race."""
        for attempt in range(UPDATE_ATTEMPTS):
            spec = self.get_spec(account_id, spec_id)
            values = change(spec)
            if values is None:
                return spec
            updated = spec.model_copy(update=values | {"update_date": self._clock(), "version": spec.version + 1})
            try:
                self._store.replace_spec(updated, expected_version=spec.version)
                return updated
            except ConcurrentUpdate:
                self._pause(random.uniform(0, 0.005 * 2**attempt))
        raise ConcurrentUpdate(f"Recognition spec {spec_id} is being changed by another request; try again.")

    def delete_spec(self, account_id: str, spec_id: int) -> None:
        """The spec first, so no new version can name it; then its versions."""
        self.get_spec(account_id, spec_id)
        self._store.delete_spec(account_id, spec_id)
        _, versions = self._store.list_versions(account_id, 0, ALL, spec_id=spec_id)
        for version in versions:
            self._store.delete_version(account_id, version.version_id)

    def publish_spec(self, account_id: str, spec_id: int, slug: str) -> RecognitionSpec:
        """Copy an account's spec to the public catalogue under `slug`, without its versions."""
        if re.fullmatch(r"[a-z0-9][a-z0-9-]{2,63}", slug) is None:
            raise ValidationFailed(f"Slug {slug!r} must be 3-64 lowercase letters, digits and dashes.")
        if self._store.get_spec_by_slug(slug) is not None:
            raise DuplicateSlug(f"A public recognition spec named {slug!r} already exists.")
        source = self.get_spec(account_id, spec_id)
        now = self._clock()
        public = source.model_copy(
            update={
                "account_id": PUBLIC_ACCOUNT,
                "spec_id": self._ids.next_id(SPEC_COUNTER),
                "slug": slug,
                "current_version_id": None,
                "create_date": now,
                "update_date": now,
                "version": 1,
            }
        )
        self._store.put_spec(public)
        return public

    def unpublish_spec(self, slug: str) -> None:
        self._store.delete_spec(PUBLIC_ACCOUNT, self.get_public(slug).spec_id)

    # -- versions -----------------------------------------------------------------------------

    def create_version(self, account_id: str, fields: dict[str, Any]) -> RecognitionVersion:
        """Checked against the spec and the network before anything is written; a spec's first version
        becomes its current one."""
        request: CreateRecognitionVersion = validate(
            CreateRecognitionVersion, decode_json_fields(fields, {"post_processings"}), "recognition version"
        )
        spec = self._store.get_spec(account_id, request.spec_id)
        if spec is None:
            raise ValidationFailed(
                f"spec_id {request.spec_id} names no recognition spec of this account.",
                [{"field": "spec_id", "message": "names no recognition spec"}],
            )
        network = self._networks.get(account_id, request.network_id)
        if network is None:
            raise ValidationFailed(
                f"network_id {request.network_id} names no network of this account.",
                [{"field": "network_id", "message": "names no network"}],
            )
        if network.status is not NetworkStatus.READY:
            raise NetworkNotReady(
                f"Network {network.network_id} is {network.status.value}, not ready: a version binds a ready "
                f"network, so wait for its deploy task {network.task_id} to succeed."
            )
        _check_post_processings(spec, request.post_processings, _network_tensors(network))
        now = self._clock()
        version = RecognitionVersion(
            account_id=account_id,
            version_id=self._ids.next_id(VERSION_COUNTER),
            spec_id=spec.spec_id,
            network_id=network.network_id,
            post_processings=[item.model_dump(mode="json", exclude_none=True) for item in request.post_processings],
            spec_name=spec.name,
            network_name=network.name,
            create_date=now,
            update_date=now,
        )
        self._store.put_version(version)
        try:
            self._change_spec(account_id, spec.spec_id, lambda fresh: _first_current(fresh, version.version_id))
        except RecognitionSpecNotFound:
            # The spec was deleted meanwhile: its versions go with it.
            self._store.delete_version(account_id, version.version_id)
            raise
        return version

    def list_versions(self, account_id: str, offset: int, limit: int, spec_id: int | None = None) -> Page:
        if spec_id is not None:
            self.get_spec(account_id, spec_id)
        count, versions = self._store.list_versions(account_id, offset, limit, spec_id=spec_id)
        return Page(count=count, offset=offset, limit=limit, results=[version.to_wire() for version in versions])

    def get_version(self, account_id: str, version_id: int) -> RecognitionVersion:
        version = self._store.get_version(account_id, version_id)
        if version is None:
            raise RecognitionVersionNotFound(version_id)
        return version

    def delete_version(self, account_id: str, version_id: int) -> None:
        """Deleting a spec's current version leaves the spec without one (its inference answers 409)."""
        version = self.get_version(account_id, version_id)
        self._store.delete_version(account_id, version_id)
        with contextlib.suppress(RecognitionSpecNotFound):  # deleted with its spec: nothing to clear
            self._change_spec(
                account_id,
                version.spec_id,
                lambda spec: {"current_version_id": None} if spec.current_version_id == version_id else None,
            )

    # -- inference ----------------------------------------------------------------------------

    def version_plan(self, account_id: str, version_id: int) -> tuple[int, RecognitionPlan]:
        """The network a version runs on, and how the worker reads its tensors."""
        version = self.get_version(account_id, version_id)
        spec = self._store.get_spec(account_id, version.spec_id)
        if spec is None:
            raise RecognitionVersionNotFound(version_id)
        return version.network_id, _plan(spec, version)

    def spec_plan(self, account_id: str, spec_id: int) -> tuple[int, RecognitionPlan]:
        """The spec's current version: the name that keeps working while the version behind it changes."""
        spec = self.get_spec(account_id, spec_id)
        version = (
            None if spec.current_version_id is None else self._store.get_version(account_id, spec.current_version_id)
        )
        if version is None:
            raise NoCurrentVersion(
                f"Recognition spec {spec_id} has no current version; create a version, or PATCH its "
                "current_version_id to one of its versions."
            )
        return version.network_id, _plan(spec, version)

    def delete_network_versions(self, account_id: str, network_id: int) -> None:
        """A deleted network takes its versions with it."""
        _, versions = self._store.list_versions(account_id, 0, ALL, network_id=network_id)
        for version in versions:
            self.delete_version(account_id, version.version_id)


def _plan(spec: RecognitionSpec, version: RecognitionVersion) -> RecognitionPlan:
    return RecognitionPlan(
        spec_id=spec.spec_id,
        version_id=version.version_id,
        labels=[output["labels"]["labels"] for output in spec.outputs],
        post_processings=version.post_processings,
    )


def _first_current(spec: RecognitionSpec, version_id: int) -> dict[str, Any] | None:
    return None if spec.current_version_id is not None else {"current_version_id": version_id}


def _network_tensors(network: Any) -> list[str]:
    from tensorgate.services.inference import available_output_tensors

    return available_output_tensors(network)


def _check_post_processings(
    spec: RecognitionSpec, post_processings: list[RecognitionPostProcessing], tensors: list[str]
) -> None:
    if len(post_processings) != len(spec.outputs):
        raise ValidationFailed(
            f"Recognition spec {spec.spec_id} has {len(spec.outputs)} output(s), so a version takes as many "
            f"post_processings, in its output order; {len(post_processings)} were sent.",
            [{"field": "post_processings", "message": f"must have {len(spec.outputs)} entries"}],
        )
    for index, (post, output) in enumerate(zip(post_processings, spec.outputs, strict=True)):
        field = f"post_processings.{index}"
        labels = output["labels"]
        kind = "detection" if labels["roi"] == Roi.BBOX.value else "classification"
        if getattr(post, kind) is None:
            raise ValidationFailed(
                f"Output {index} of the spec has roi {labels['roi']}, so post_processings[{index}] must be a {kind}.",
                [{"field": field, "message": f"must be a {kind}"}],
            )
        expected = len(labels["labels"])
        if len(post.thresholds) != expected:
            raise ValidationFailed(
                f"Output {index} of the spec has {expected} label(s), so post_processings[{index}] takes "
                f"{expected} thresholds, one per label; {len(post.thresholds)} were sent.",
                [{"field": f"{field}.{kind}.thresholds", "message": f"must have {expected} entries"}],
            )
        if tensors:
            for name in post.tensor_names():
                if name not in tensors:
                    raise ValidationFailed(
                        f"post_processings[{index}] reads tensor {name!r}, which the network does not output; it "
                        f"outputs: {', '.join(tensors[:30])}.",
                        [{"field": field, "message": f"{name!r} is not an output of the network"}],
                    )
