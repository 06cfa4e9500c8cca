"""In-memory fakes of the ports in `tensorgate.ports`, for service tests without AWS.

They keep the adapters' contracts: records are copied in and out (a caller cannot change what is
stored without a write), `replace` checks the expected version as DynamoDB's condition does,
`finish` ends a pending task only once, ids come from counters that never repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tensorgate.errors import (
    ConcurrentUpdate,
    EndpointNotFound,
    NetworkNotFound,
    RecognitionSpecNotFound,
    StorageUnavailable,
    endpoint_name_taken,
)
from tensorgate.listing import ListQuery, ListResult
from tensorgate.models import (
    PUBLIC_ACCOUNT,
    ApiKey,
    Endpoint,
    Network,
    RecognitionSpec,
    RecognitionVersion,
    Task,
    TaskStatus,
)


class InMemoryNetworkRepository:
    def __init__(self) -> None:
        self.records: dict[tuple[str, int], Network] = {}
        # Called with the network about to be replaced, before the version check: lets a test play
        # another writer that changes the record between a service's read and its write.
        self.before_replace: Callable[[Network], None] | None = None

    def put_new(self, network: Network) -> None:
        key = (network.account_id, network.network_id)
        if key in self.records:
            raise StorageUnavailable(f"network {key} already exists")
        self.records[key] = network.model_copy(deep=True)

    def get(self, account_id: str, network_id: int) -> Network | None:
        network = self.records.get((account_id, network_id))
        return None if network is None else network.model_copy(deep=True)

    def get_by_slug(self, slug: str) -> Network | None:
        for (account_id, _), network in sorted(self.records.items()):
            if account_id == PUBLIC_ACCOUNT and network.slug == slug:
                return network.model_copy(deep=True)
        return None

    def page(self, account_id: str, query: ListQuery) -> ListResult[Network]:
        # DynamoDB returns a partition in sort-key order: by network id.
        mine = [
            network
            for (owner, _), network in sorted(self.records.items())
            if owner == account_id
            and matches(query, network.name, network.description, network.author or "", network.status.value)
        ]
        return page_of(mine, query, lambda network: network.network_id)

    def get_by_name(self, account_id: str, name: str) -> Network | None:
        named = [n for (owner, _), n in sorted(self.records.items()) if owner == account_id and n.name == name]
        return named[-1].model_copy(deep=True) if named else None

    def replace(self, network: Network, expected_version: int) -> None:
        if self.before_replace is not None:
            self.before_replace(network)
        key = (network.account_id, network.network_id)
        current = self.records.get(key)
        if current is None:
            raise NetworkNotFound(network.public_id)
        if current.version != expected_version:
            raise ConcurrentUpdate(f"Network {network.public_id} changed meanwhile.")
        self.records[key] = network.model_copy(deep=True)

    def delete(self, account_id: str, network_id: int) -> None:
        self.records.pop((account_id, network_id), None)


class InMemoryRecognitionRepository:
    def __init__(self) -> None:
        self.specs: dict[tuple[str, int], RecognitionSpec] = {}
        self.versions: dict[tuple[str, int], RecognitionVersion] = {}
        # As InMemoryNetworkRepository.before_replace: another writer between a read and a write.
        self.before_replace: Callable[[RecognitionSpec], None] | None = None

    def put_spec(self, spec: RecognitionSpec) -> None:
        key = (spec.account_id, spec.spec_id)
        if key in self.specs:
            raise StorageUnavailable(f"spec {key} already exists")
        self.specs[key] = spec.model_copy(deep=True)

    def get_spec(self, account_id: str, spec_id: int) -> RecognitionSpec | None:
        spec = self.specs.get((account_id, spec_id))
        return None if spec is None else spec.model_copy(deep=True)

    def get_spec_by_slug(self, slug: str) -> RecognitionSpec | None:
        for (account_id, _), spec in sorted(self.specs.items()):
            if account_id == PUBLIC_ACCOUNT and spec.slug == slug:
                return spec.model_copy(deep=True)
        return None

    def page_specs(self, account_id: str, query: ListQuery) -> ListResult[RecognitionSpec]:
        mine = [
            spec
            for (owner, _), spec in sorted(self.specs.items())
            if owner == account_id
            and matches(
                query, spec.name, spec.description, spec.author or "", "ready" if spec.current_version_id else "pending"
            )
        ]
        return page_of(mine, query, lambda spec: spec.spec_id)

    def get_spec_by_name(self, account_id: str, name: str) -> RecognitionSpec | None:
        named = [s for (owner, _), s in sorted(self.specs.items()) if owner == account_id and s.name == name]
        return named[-1].model_copy(deep=True) if named else None

    def replace_spec(self, spec: RecognitionSpec, expected_version: int) -> None:
        if self.before_replace is not None:
            self.before_replace(spec)
        key = (spec.account_id, spec.spec_id)
        current = self.specs.get(key)
        if current is None:
            raise RecognitionSpecNotFound(spec.public_id)
        if current.version != expected_version:
            raise ConcurrentUpdate(f"Recognition spec {spec.public_id} changed meanwhile.")
        self.specs[key] = spec.model_copy(deep=True)

    def delete_spec(self, account_id: str, spec_id: int) -> None:
        self.specs.pop((account_id, spec_id), None)

    def put_version(self, version: RecognitionVersion) -> None:
        key = (version.account_id, version.version_id)
        if key in self.versions:
            raise StorageUnavailable(f"version {key} already exists")
        self.versions[key] = version.model_copy(deep=True)

    def get_version(self, account_id: str, version_id: int) -> RecognitionVersion | None:
        version = self.versions.get((account_id, version_id))
        return None if version is None else version.model_copy(deep=True)

    def list_versions(
        self, account_id: str, offset: int, limit: int, spec_id: int | None = None, network_id: int | None = None
    ) -> tuple[int, list[RecognitionVersion]]:
        mine = [
            version
            for (owner, _), version in sorted(self.versions.items())
            if owner == account_id
            and (spec_id is None or version.spec_id == spec_id)
            and (network_id is None or version.network_id == network_id)
        ]
        return len(mine), [version.model_copy(deep=True) for version in mine[offset : offset + limit]]

    def delete_version(self, account_id: str, version_id: int) -> None:
        self.versions.pop((account_id, version_id), None)


class InMemoryTaskRepository:
    def __init__(self) -> None:
        self.records: dict[int, Task] = {}

    def put_new(self, task: Task) -> None:
        if task.task_id in self.records:
            raise StorageUnavailable(f"task {task.task_id} already exists")
        self.records[task.task_id] = task.model_copy(deep=True)

    def get(self, task_id: int) -> Task | None:
        task = self.records.get(task_id)
        return None if task is None else task.model_copy(deep=True)

    def get_many(self, task_ids: Iterable[int]) -> list[Task]:
        # BatchGetItem promises no order; answer in reverse so callers cannot rely on one.
        found = [self.records[task_id] for task_id in dict.fromkeys(task_ids) if task_id in self.records]
        return [task.model_copy(deep=True) for task in reversed(found)]

    def finish(self, task: Task) -> bool:
        current = self.records.get(task.task_id)
        if current is None or current.status is not TaskStatus.PENDING:
            return False
        self.records[task.task_id] = task.model_copy(deep=True)
        return True

    def delete(self, task_id: int) -> None:
        self.records.pop(task_id, None)


class InMemoryApiKeyRepository:
    def __init__(self) -> None:
        self.records: dict[str, ApiKey] = {}

    def put(self, key_hash: str, key: ApiKey) -> None:
        self.records[key_hash] = key.model_copy()

    def get(self, key_hash: str) -> ApiKey | None:
        key = self.records.get(key_hash)
        return None if key is None else key.model_copy()

    def delete_by_id(self, key_id: str) -> bool:
        hashes = [key_hash for key_hash, key in self.records.items() if key.key_id == key_id]
        for key_hash in hashes:
            del self.records[key_hash]
        return bool(hashes)

    def list(self) -> list[ApiKey]:
        return [key.model_copy() for key in self.records.values()]


class CountingIdAllocator:
    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    def next_id(self, counter: str) -> int:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]


class InMemoryBlobStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.writes: list[str] = []  # keys in the order they were written
        # Keys whose write fails, as a throttled or unavailable S3 would.
        self.failing_keys: set[str] = set()

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        if key in self.failing_keys:
            raise StorageUnavailable(f"The file store refused a write of {key}; retry shortly.")
        self.objects[key] = bytes(body)
        self.content_types[key] = content_type
        self.writes.append(key)

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete_prefix(self, prefix: str) -> int:
        keys = [key for key in self.objects if key.startswith(prefix)]
        for key in keys:
            del self.objects[key]
            self.content_types.pop(key, None)
        return len(keys)

    def copy_prefix(self, source: str, destination: str) -> int:
        keys = [key for key in self.objects if key.startswith(source)]
        for key in keys:
            copied = destination + key.removeprefix(source)
            self.objects[copied] = self.objects[key]
            self.content_types[copied] = self.content_types.get(key, "application/octet-stream")
        return len(keys)

    def presigned_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        return {
            "url": "https://uploads.example.test/",
            "fields": {"key": key, "policy": f"max {max_bytes} bytes for {expires_in} s"},
        }


class InMemoryMessageQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], str | None]] = []

    def send(self, body: dict[str, Any], group: str | None = None) -> str:
        self.messages.append((body, group))
        return f"message-{len(self.messages)}"


class InMemoryGatewayKeys:
    """API Gateway's usage-plan keys, as a dict of key id → key value."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def register(self, key_id: str, api_key: str) -> None:
        self.keys[key_id] = api_key

    def remove(self, key_id: str) -> None:
        self.keys.pop(key_id, None)


def matches(query: ListQuery, name: str, description: str, author: str, status: str) -> bool:
    """The list filters as the adapters apply them: parts, any case; status exact."""
    if query.search and query.search.casefold() not in "\n".join((name, description, author)).casefold():
        return False
    if query.name and query.name.casefold() not in name.casefold():
        return False
    if query.author and query.author.casefold() not in author.casefold():
        return False
    return not query.status or query.status == status


def page_of(records: list[Any], query: ListQuery, key: Callable[[Any], int]) -> ListResult[Any]:
    """One page of `records` (in key order, already filtered): after the cursor's key, or after `offset`."""
    count = len(records)
    if query.cursor is not None:
        records = [record for record in records if key(record) > query.cursor]
    start = 0 if query.cursor is not None else query.offset
    page = records[start : start + query.limit]
    more = len(records) > start + query.limit
    return ListResult(
        count=count,
        items=[record.model_copy(deep=True) for record in page],
        last_key=key(page[-1]) if more and page else None,
    )


class InMemoryEndpointRepository:
    def __init__(self) -> None:
        self.records: dict[tuple[str, int], Endpoint] = {}

    def put_new(self, endpoint: Endpoint) -> None:
        if self.get_by_name(endpoint.account_id, endpoint.name) is not None:
            raise endpoint_name_taken(endpoint.name)
        self.records[(endpoint.account_id, endpoint.endpoint_id)] = endpoint.model_copy(deep=True)

    def get(self, account_id: str, endpoint_id: int) -> Endpoint | None:
        endpoint = self.records.get((account_id, endpoint_id))
        return None if endpoint is None else endpoint.model_copy(deep=True)

    def get_by_name(self, account_id: str, name: str) -> Endpoint | None:
        for (owner, _), endpoint in sorted(self.records.items()):
            if owner == account_id and endpoint.name == name:
                return endpoint.model_copy(deep=True)
        return None

    def page(self, account_id: str, query: ListQuery) -> ListResult[Endpoint]:
        mine = [
            endpoint
            for (owner, _), endpoint in sorted(self.records.items())
            if owner == account_id
            and matches(query, endpoint.name, endpoint.description, endpoint.author, endpoint.status.value)
        ]
        return page_of(mine, query, lambda endpoint: endpoint.endpoint_id)

    def replace(self, endpoint: Endpoint, expected_version: int, previous_name: str) -> None:
        key = (endpoint.account_id, endpoint.endpoint_id)
        current = self.records.get(key)
        if current is None:
            raise EndpointNotFound(endpoint.endpoint_id)
        if current.version != expected_version:
            raise ConcurrentUpdate(f"Endpoint {endpoint.endpoint_id} changed meanwhile.")
        if endpoint.name != previous_name and self.get_by_name(endpoint.account_id, endpoint.name) is not None:
            raise endpoint_name_taken(endpoint.name)
        self.records[key] = endpoint.model_copy(deep=True)

    def delete(self, endpoint: Endpoint) -> None:
        self.records.pop((endpoint.account_id, endpoint.endpoint_id), None)


class InMemoryWorkerCapacity:
    """The replicas held per device, as the adapter's counter sums them."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {"cpu": 0, "gpu": 0}

    def change(self, device: str, delta: int) -> int:
        self.held[device] = max(0, self.held[device] + delta)
        return self.held[device]
