"""NetworkService against in-memory ports: create, list, update (with concurrent writers), delete, publish."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tensorgate import layout
from tensorgate.errors import (
    ConcurrentUpdate,
    DuplicateSlug,
    ImmutableField,
    InvalidFileName,
    MissingModelFile,
    NetworkNotFound,
    PayloadTooLarge,
    StorageUnavailable,
    UnknownField,
    ValidationFailed,
)
from tensorgate.forms import UploadedFile
from tensorgate.listing import ListQuery
from tensorgate.models import PUBLIC_ACCOUNT, Network, TaskKind, TaskStatus
from tensorgate.services.networks import UPDATE_ATTEMPTS, NetworkService, UploadPolicy

from tests.fakes import (
    CountingIdAllocator,
    InMemoryBlobStore,
    InMemoryNetworkRepository,
    InMemoryTaskRepository,
)
from tests.samples import PREPROCESSING

FILES = [
    UploadedFile("saved_model.pb", b"graph"),
    UploadedFile("variables/variables.index", b"index"),
    UploadedFile("mean.npy", b"mean"),
]
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def labelled(count: int) -> dict[str, Any]:
    """A postprocessing with `count` labels of 8 characters: a way to make a network's record large."""
    return {"tensors_output": {"tensors": ["prob"], "labels": [f"l{index:07d}" for index in range(count)]}}


class SteppingClock:
    """Each reading is one second after the previous one, so update dates visibly move."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Ports:
    networks: InMemoryNetworkRepository = field(default_factory=InMemoryNetworkRepository)
    tasks: InMemoryTaskRepository = field(default_factory=InMemoryTaskRepository)
    ids: CountingIdAllocator = field(default_factory=CountingIdAllocator)
    blobs: InMemoryBlobStore = field(default_factory=InMemoryBlobStore)

    def snapshot(self) -> dict[str, Any]:
        return {
            "networks": dict(self.networks.records),
            "tasks": dict(self.tasks.records),
            "ids": dict(self.ids.counters),
            "objects": dict(self.blobs.objects),
        }


@pytest.fixture
def ports() -> Ports:
    return Ports()


@pytest.fixture
def service(ports: Ports) -> NetworkService:
    return NetworkService(
        networks=ports.networks,
        tasks=ports.tasks,
        ids=ports.ids,
        blobs=ports.blobs,
        policy=UploadPolicy(max_file_bytes=1024, max_archive_bytes=10_000, presigned_upload_seconds=60),
        clock=SteppingClock(),
    )


def create(service: NetworkService, account: str = "alice", files: list[UploadedFile] | None = None, **fields: Any):
    values = {"name": "my network", "preprocessing": PREPROCESSING} | fields
    return service.create(account, values, FILES if files is None else files)


# -- create ------------------------------------------------------------------------------------


def test_create_with_files_stores_files_then_manifest_and_opens_a_pending_deploy_task(
    service: NetworkService, ports: Ports
) -> None:
    # When
    created = create(service)
    # Then
    network = created.network
    assert (network.network_id, network.task_id, created.upload) == (1, 1, None)
    assert network.files == ["mean.npy", "saved_model.pb", "variables/variables.index"]
    assert ports.blobs.writes[-1] == layout.manifest_key("alice", 1), "the manifest must be written last"
    assert ports.blobs.objects[layout.file_key("alice", 1, "variables/variables.index")] == b"index"
    manifest = json.loads(ports.blobs.objects[layout.manifest_key("alice", 1)])
    assert manifest == {
        "account_id": "alice",
        "network_id": 1,
        "task_id": 1,
        "framework": "tensorflow-1.x",
        "files": network.files,
    }
    task = ports.tasks.records[1]
    assert (task.status, task.kind, task.network_id, task.account_id) == (
        TaskStatus.PENDING,
        TaskKind.DEPLOY,
        1,
        "alice",
    )
    assert task.expires_at == int((network.create_date + timedelta(days=30)).timestamp())
    assert ports.networks.records[("alice", 1)] == network


def test_create_decodes_json_text_fields_of_the_curl_form(service: NetworkService) -> None:
    created = create(service, metadata=json.dumps({"author": "me"}), preprocessing=json.dumps(PREPROCESSING))
    assert created.network.metadata == {"author": "me"}
    assert created.network.preprocessing == PREPROCESSING


def test_create_without_files_answers_a_presigned_post_for_one_archive(service: NetworkService, ports: Ports) -> None:
    created = create(service, files=[], archive_name="model.tar.gz")
    key = layout.archive_prefix("alice", 1) + "model.tar.gz"
    assert created.upload is not None
    assert created.upload["key"] == created.upload["fields"]["key"] == key
    assert (created.upload["max_bytes"], created.upload["expires_in"]) == (10_000, 60)
    assert created.to_wire()["upload"] == created.upload
    assert ports.blobs.objects == {}, "nothing is stored before the archive arrives"
    assert create(service, files=[]).upload["key"].endswith("/archive/model.zip")  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "files", "error"),
    [
        pytest.param({"framework": "theano"}, FILES, ValidationFailed, id="unknown_framework"),
        pytest.param({"colour": "blue"}, FILES, ValidationFailed, id="unknown_field"),
        pytest.param({"name": ""}, FILES, ValidationFailed, id="empty_name"),
        pytest.param({}, [FILES[0]], ValidationFailed, id="mean_file_not_uploaded"),
        pytest.param({}, [*FILES, UploadedFile("../x.pb", b"g")], InvalidFileName, id="path_traversal"),
        pytest.param({}, [*FILES, UploadedFile("saved_model.pb", b"again")], InvalidFileName, id="file_twice"),
        pytest.param({}, [*FILES, UploadedFile("big.pb", b"x" * 1025)], PayloadTooLarge, id="file_over_limit"),
        pytest.param({"preprocessing": None}, [UploadedFile("notes.txt", b"n")], MissingModelFile, id="no_model"),
        pytest.param({"archive_name": "model.zip"}, FILES, ValidationFailed, id="archive_name_with_files"),
        pytest.param({"archive_name": "model.rar"}, [], ValidationFailed, id="archive_name_bad_suffix"),
        pytest.param({"metadata": "{not json"}, FILES, ValidationFailed, id="metadata_not_json"),
        pytest.param({"postprocessings": [labelled(40_000)]}, FILES, PayloadTooLarge, id="over_the_record_size"),
    ],
)
def test_refused_create_writes_nothing_and_allocates_no_id(
    service: NetworkService, ports: Ports, fields: dict[str, Any], files: list[UploadedFile], error: type[Exception]
) -> None:
    with pytest.raises(error):
        create(service, files=files, **fields)
    assert ports.snapshot() == Ports().snapshot()


def test_create_whose_file_write_fails_removes_what_it_wrote(service: NetworkService, ports: Ports) -> None:
    # Given: S3 refuses the manifest, the last write
    ports.blobs.failing_keys.add(layout.manifest_key("alice", 1))
    # When
    with pytest.raises(StorageUnavailable):
        create(service)
    # Then: no record and no file is left behind for a network that was never created
    assert (ports.networks.records, ports.tasks.records, ports.blobs.objects) == ({}, {}, {})


# -- read --------------------------------------------------------------------------------------


def test_list_pages_the_accounts_own_networks_in_id_order(service: NetworkService) -> None:
    for index in range(5):
        create(service, name=f"n{index}")
    create(service, account="bob", name="bob's")
    page = service.list("alice", ListQuery(offset=1, limit=2))
    assert (page.count, page.offset, page.limit) == (5, 1, 2)
    assert [item["name"] for item in page.results] == ["n1", "n2"]
    assert service.list("alice", ListQuery(offset=5, limit=2)).results == []
    assert [item["name"] for item in service.list("bob", ListQuery(limit=10)).results] == ["bob's"]


def test_get_another_accounts_network_is_not_found(service: NetworkService) -> None:
    network = create(service).network
    assert service.get("alice", network.network_id) == network
    with pytest.raises(NetworkNotFound):
        service.get("bob", network.network_id)


# -- update ------------------------------------------------------------------------------------


def test_update_changes_mutable_fields_bumps_version_and_update_date(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    updated = service.update("alice", network.network_id, {"name": "new", "description": "d", "metadata": '{"k": "v"}'})
    assert (updated.name, updated.description, updated.metadata) == ("new", "d", {"k": "v"})
    assert updated.version == network.version + 1 and updated.update_date > network.update_date
    assert updated.preprocessing == network.preprocessing and updated.create_date == network.create_date
    assert ports.networks.records[("alice", network.network_id)] == updated


@pytest.mark.parametrize(
    ("changes", "error", "named"),
    [
        ({"preprocessing": PREPROCESSING}, ImmutableField, "preprocessing"),
        ({"framework": "onnx"}, ImmutableField, "framework"),
        ({"id": 9}, ImmutableField, "id"),
        ({"task_id": 9}, ImmutableField, "task_id"),
        ({"colour": "blue"}, UnknownField, "colour"),
        ({"name": ""}, ValidationFailed, "name"),
        ({"metadata": ["not", "an", "object"]}, ValidationFailed, "metadata"),
    ],
    ids=["preprocessing", "framework", "id", "task_id", "unknown", "empty_name", "metadata_list"],
)
def test_update_refuses_with_the_field_named_and_changes_nothing(
    service: NetworkService, ports: Ports, changes: dict[str, Any], error: type[Exception], named: str
) -> None:
    network = create(service).network
    with pytest.raises(error) as refused:
        service.update("alice", network.network_id, changes)
    assert named in refused.value.args[0]
    assert ports.networks.records[("alice", network.network_id)] == network


def test_update_that_would_outgrow_the_record_size_is_refused_and_changes_nothing(
    service: NetworkService, ports: Ports
) -> None:
    # A record over DynamoDB's 400 KB item size used to fail to store, answered as a 503 to retry.
    network = create(service, postprocessings=[labelled(20_000)]).network
    with pytest.raises(PayloadTooLarge, match="KiB"):
        service.update("alice", network.network_id, {"metadata": {"notes": "n" * 60_000}})
    assert ports.networks.records[("alice", network.network_id)] == network


def test_update_retries_after_a_concurrent_change_and_keeps_it(service: NetworkService, ports: Ports) -> None:
    # Given: another request changes the description between this update's read and its write, twice
    network = create(service).network
    interruptions = []

    def another_writer(_: Network) -> None:
        if len(interruptions) < 2:
            key = ("alice", network.network_id)
            current = ports.networks.records[key]
            interruptions.append(current.version)
            ports.networks.records[key] = current.model_copy(
                update={"description": f"edited {len(interruptions)}", "version": current.version + 1}
            )

    ports.networks.before_replace = another_writer
    # When
    updated = service.update("alice", network.network_id, {"name": "renamed"})
    # Then: the rename is applied on top of the other writer's change, not over it
    assert interruptions == [1, 2]
    assert (updated.name, updated.description, updated.version) == ("renamed", "edited 2", 4)
    assert ports.networks.records[("alice", network.network_id)] == updated


def test_update_gives_up_with_concurrent_update_after_its_attempts(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    attempts = []

    def always_first(_: Network) -> None:
        key = ("alice", network.network_id)
        attempts.append(1)
        ports.networks.records[key] = ports.networks.records[key].model_copy(
            update={"version": ports.networks.records[key].version + 1}
        )

    ports.networks.before_replace = always_first
    with pytest.raises(ConcurrentUpdate, match="try again"):
        service.update("alice", network.network_id, {"name": "renamed"})
    assert len(attempts) == UPDATE_ATTEMPTS


def test_update_of_a_network_deleted_meanwhile_is_not_found(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    ports.networks.before_replace = lambda _: ports.networks.records.clear()
    with pytest.raises(NetworkNotFound):
        service.update("alice", network.network_id, {"name": "renamed"})


# -- delete ------------------------------------------------------------------------------------


def test_delete_removes_record_task_uploads_and_converted_model(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    kept = create(service, name="kept").network
    ports.blobs.put(layout.model_key("alice", network.network_id), b"onnx")
    service.delete("alice", network.network_id)
    assert list(ports.networks.records) == [("alice", kept.network_id)]
    assert list(ports.tasks.records) == [kept.task_id]
    assert all(f"/{kept.network_id}/" in key for key in ports.blobs.objects)


def test_delete_of_another_accounts_network_removes_nothing(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    before = ports.snapshot()
    with pytest.raises(NetworkNotFound):
        service.delete("bob", network.network_id)
    assert ports.snapshot() == before


# -- public catalogue --------------------------------------------------------------------------


def test_publish_copies_network_and_files_under_a_slug(service: NetworkService, ports: Ports) -> None:
    network = create(service).network
    ports.blobs.put(layout.model_key("alice", network.network_id), b"onnx")
    public = service.publish("alice", network.network_id, "imagenet-demo")
    assert (public.account_id, public.slug, public.public_id) == (PUBLIC_ACCOUNT, "imagenet-demo", "imagenet-demo")
    assert public.network_id != network.network_id and public.task_id == network.task_id
    assert ports.blobs.objects[layout.model_key(PUBLIC_ACCOUNT, public.network_id)] == b"onnx"
    assert ports.blobs.objects[layout.manifest_key(PUBLIC_ACCOUNT, public.network_id)]
    assert service.get_public("imagenet-demo") == public
    assert [item["id"] for item in service.list_public(ListQuery(limit=10)).results] == ["imagenet-demo"]
    assert service.get("alice", network.network_id) == network, "the account keeps its own network"


@pytest.mark.parametrize("slug", ["UPPER", "ab", "-leading-dash", "has space", "x" * 65])
def test_publish_refuses_a_malformed_slug(service: NetworkService, slug: str) -> None:
    network = create(service).network
    with pytest.raises(ValidationFailed):
        service.publish("alice", network.network_id, slug)


def test_publish_refuses_a_slug_taken_and_a_missing_network(service: NetworkService) -> None:
    network = create(service).network
    service.publish("alice", network.network_id, "taken")
    with pytest.raises(DuplicateSlug):
        service.publish("alice", network.network_id, "taken")
    with pytest.raises(NetworkNotFound):
        service.publish("bob", network.network_id, "not-bobs")


def test_unpublish_removes_the_public_copy_but_keeps_the_shared_deploy_task(
    service: NetworkService, ports: Ports
) -> None:
    network = create(service).network
    public = service.publish("alice", network.network_id, "imagenet-demo")
    service.unpublish("imagenet-demo")
    with pytest.raises(NetworkNotFound):
        service.get_public("imagenet-demo")
    assert network.task_id in ports.tasks.records
    assert not any(
        key.startswith(layout.network_prefix(PUBLIC_ACCOUNT, public.network_id)) for key in ports.blobs.objects
    )
    assert service.get("alice", network.network_id) == network
