"""DynamoDB repositories for networks, tasks, API keys and id counters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.errors import ConcurrentUpdate, NetworkNotFound, RecognitionSpecNotFound, StorageUnavailable
from tensorgate.listing import ListQuery, ListResult
from tensorgate.models import PUBLIC_ACCOUNT, ApiKey, Network, RecognitionSpec, RecognitionVersion, Task

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
BATCH_GET_LIMIT = 100


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _unavailable(error: ClientError, what: str) -> StorageUnavailable:
    return StorageUnavailable(f"The service could not {what} right now ({error_code(error)}); retry shortly.")


def _put_if_version(db: Any, table: str, item: dict[str, Any], expected_version: int, what: str) -> bool:
    """Write a record over the stored one if that one is still at `expected_version` (optimistic concurrency).
    False when it is not: changed meanwhile, or gone; the caller tells which."""
    try:
        db.put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_exists(network_id) AND version = :expected",
            ExpressionAttributeValues=_to_item({":expected": expected_version}),
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise _unavailable(error, what) from None
    return True


class DynamoNetworkRepository:
    """Key: account_id (S) + network_id (N). The record itself is a JSON document attribute, beside the
    small attributes lists filter on (adapters/listing.py); each account's count is an item of its own."""

    def __init__(self, table: str, dynamodb: Any | None = None, counters_table: str | None = None) -> None:
        from tensorgate.adapters.listing import PartitionLister

        self._table = table
        self._db = dynamodb or client("dynamodb")
        self._lister = PartitionLister(table, self._db, "networks", counters_table)

    def _item(self, network: Network) -> dict[str, Any]:
        from tensorgate.adapters.listing import PartitionLister

        return _to_item(
            {
                "account_id": network.account_id,
                "network_id": network.network_id,
                "slug": network.slug,
                "version": network.version,
                **PartitionLister.index_attributes(
                    network.name, network.description, network.author, network.status.value
                ),
                "document": network.model_dump_json(),
            }
        )

    def put_new(self, network: Network) -> None:
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._item(network),
                            "ConditionExpression": "attribute_not_exists(network_id)",
                        }
                    },
                    self._lister.count_change(network.account_id, +1),
                ]
            )
        except ClientError as error:
            raise _unavailable(error, "store the network") from None

    def page(self, account_id: str, query: ListQuery) -> ListResult[Network]:
        return self._lister.page(account_id, query).parsed(Network.model_validate_json)

    def get_by_name(self, account_id: str, name: str) -> Network | None:
        """The newest network with exactly this name (names need not be unique)."""
        key = self._lister.last_named(account_id, name)
        return None if key is None else self.get(account_id, key)

    def get(self, account_id: str, network_id: int) -> Network | None:
        try:
            response = self._db.get_item(
                TableName=self._table,
                Key=_to_item({"account_id": account_id, "network_id": network_id}),
                ConsistentRead=True,
            )
        except ClientError as error:
            raise _unavailable(error, "read the network") from None
        item = response.get("Item")
        return None if item is None else Network.model_validate_json(_from_item(item)["document"])

    def get_by_slug(self, slug: str) -> Network | None:
        for item in self._query(PUBLIC_ACCOUNT, filter_slug=slug):
            return Network.model_validate_json(item["document"])
        return None

    def _query(self, account_id: str, filter_slug: str | None = None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "account_id = :account",
            "ExpressionAttributeValues": _to_item({":account": account_id}),
            "ConsistentRead": True,
        }
        if filter_slug is not None:
            arguments["FilterExpression"] = "slug = :slug"
            arguments["ExpressionAttributeValues"] |= _to_item({":slug": filter_slug})
        try:
            while True:
                response = self._db.query(**arguments)
                for item in response.get("Items", []):
                    yield _from_item(item)
                if "LastEvaluatedKey" not in response:
                    return
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as error:
            raise _unavailable(error, "list networks") from None

    def replace(self, network: Network, expected_version: int) -> None:
        if not _put_if_version(self._db, self._table, self._item(network), expected_version, "update the network"):
            if self.get(network.account_id, network.network_id) is None:
                raise NetworkNotFound(network.public_id)
            raise ConcurrentUpdate(f"Network {network.public_id} changed meanwhile.")

    def delete(self, account_id: str, network_id: int) -> None:
        key = _to_item({"account_id": account_id, "network_id": network_id})
        delete = {"TableName": self._table, "Key": key, "ConditionExpression": "attribute_exists(network_id)"}
        try:
            self._db.transact_write_items(TransactItems=[{"Delete": delete}, self._lister.count_change(account_id, -1)])
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException":
                return  # already deleted: the count was moved then
            raise _unavailable(error, "delete the network") from None


SPECS_PARTITION = "#recognition-specs"
VERSIONS_PARTITION = "#recognition-versions"


class DynamoRecognitionRepository:
    """Specs and versions in the networks table, each kind in its own partition of the account:
    account_id `<account>#recognition-specs` or `<account>#recognition-versions`, network_id the
    spec's or version's id (from the same counter as networks, so ids never collide). The networks'
    own queries name the bare account, so they never read these items."""

    def __init__(self, table: str, dynamodb: Any | None = None, counters_table: str | None = None) -> None:
        from tensorgate.adapters.listing import PartitionLister

        self._table = table
        self._db = dynamodb or client("dynamodb")
        self._lister = PartitionLister(table, self._db, "recognition specs", counters_table)

    # -- specs

    def _spec_item(self, spec: RecognitionSpec) -> dict[str, Any]:
        from tensorgate.adapters.listing import PartitionLister

        return _to_item(
            {
                "account_id": spec.account_id + SPECS_PARTITION,
                "network_id": spec.spec_id,
                "slug": spec.slug,
                "version": spec.version,
                # A spec's status for the list filter: whether inference through it has a version to run.
                **PartitionLister.index_attributes(
                    spec.name, spec.description, spec.author, "ready" if spec.current_version_id else "pending"
                ),
                "document": spec.model_dump_json(),
            }
        )

    def put_spec(self, spec: RecognitionSpec) -> None:
        partition = spec.account_id + SPECS_PARTITION
        put = {
            "TableName": self._table,
            "Item": self._spec_item(spec),
            "ConditionExpression": "attribute_not_exists(network_id)",
        }
        try:
            self._db.transact_write_items(TransactItems=[{"Put": put}, self._lister.count_change(partition, +1)])
        except ClientError as error:
            raise _unavailable(error, "store the recognition spec") from None

    def page_specs(self, account_id: str, query: ListQuery) -> ListResult[RecognitionSpec]:
        result = self._lister.page(account_id + SPECS_PARTITION, query)
        return result.parsed(RecognitionSpec.model_validate_json)

    def get_spec_by_name(self, account_id: str, name: str) -> RecognitionSpec | None:
        key = self._lister.last_named(account_id + SPECS_PARTITION, name)
        return None if key is None else self.get_spec(account_id, key)

    def get_spec(self, account_id: str, spec_id: int) -> RecognitionSpec | None:
        item = self._get(account_id + SPECS_PARTITION, spec_id, "read the recognition spec")
        return None if item is None else RecognitionSpec.model_validate_json(item["document"])

    def get_spec_by_slug(self, slug: str) -> RecognitionSpec | None:
        for item in self._query(PUBLIC_ACCOUNT + SPECS_PARTITION, {"slug": slug}):
            return RecognitionSpec.model_validate_json(item["document"])
        return None

    def replace_spec(self, spec: RecognitionSpec, expected_version: int) -> None:
        item = self._spec_item(spec)
        if not _put_if_version(self._db, self._table, item, expected_version, "update the recognition spec"):
            if self.get_spec(spec.account_id, spec.spec_id) is None:
                raise RecognitionSpecNotFound(spec.public_id)
            raise ConcurrentUpdate(f"Recognition spec {spec.public_id} changed meanwhile.")

    def delete_spec(self, account_id: str, spec_id: int) -> None:
        partition = account_id + SPECS_PARTITION
        key = _to_item({"account_id": partition, "network_id": spec_id})
        delete = {"TableName": self._table, "Key": key, "ConditionExpression": "attribute_exists(network_id)"}
        try:
            self._db.transact_write_items(TransactItems=[{"Delete": delete}, self._lister.count_change(partition, -1)])
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException":
                return  # already deleted: the count was moved then
            raise _unavailable(error, "delete the recognition spec") from None

    # -- versions

    def put_version(self, version: RecognitionVersion) -> None:
        item = _to_item(
            {
                "account_id": version.account_id + VERSIONS_PARTITION,
                "network_id": version.version_id,
                "spec": version.spec_id,
                "network": version.network_id,
                "document": version.model_dump_json(),
            }
        )
        self._put(item, "store the recognition version")

    def get_version(self, account_id: str, version_id: int) -> RecognitionVersion | None:
        item = self._get(account_id + VERSIONS_PARTITION, version_id, "read the recognition version")
        return None if item is None else RecognitionVersion.model_validate_json(item["document"])

    def list_versions(
        self, account_id: str, offset: int, limit: int, spec_id: int | None = None, network_id: int | None = None
    ) -> tuple[int, list[RecognitionVersion]]:
        filters = {name: value for name, value in (("spec", spec_id), ("network", network_id)) if value is not None}
        count, page = _page(self._query(account_id + VERSIONS_PARTITION, filters), offset, limit)
        return count, [RecognitionVersion.model_validate_json(item["document"]) for item in page]

    def delete_version(self, account_id: str, version_id: int) -> None:
        self._delete(account_id + VERSIONS_PARTITION, version_id, "delete the recognition version")

    # -- shared

    def _put(self, item: dict[str, Any], what: str) -> None:
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(network_id)")
        except ClientError as error:
            raise _unavailable(error, what) from None

    def _get(self, partition: str, item_id: int, what: str) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(
                TableName=self._table,
                Key=_to_item({"account_id": partition, "network_id": item_id}),
                ConsistentRead=True,
            )
        except ClientError as error:
            raise _unavailable(error, what) from None
        item = response.get("Item")
        return None if item is None else _from_item(item)

    def _delete(self, partition: str, item_id: int, what: str) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key=_to_item({"account_id": partition, "network_id": item_id}))
        except ClientError as error:
            raise _unavailable(error, what) from None

    def _query(self, partition: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "account_id = :partition",
            "ExpressionAttributeValues": _to_item({":partition": partition}),
            "ConsistentRead": True,
        }
        if filters:
            arguments["FilterExpression"] = " AND ".join(f"#{name} = :{name}" for name in filters)
            arguments["ExpressionAttributeNames"] = {f"#{name}": name for name in filters}
            arguments["ExpressionAttributeValues"] |= _to_item({f":{name}": value for name, value in filters.items()})
        try:
            while True:
                response = self._db.query(**arguments)
                for item in response.get("Items", []):
                    yield _from_item(item)
                if "LastEvaluatedKey" not in response:
                    return
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as error:
            raise _unavailable(error, "list recognition resources") from None


def _page(items: Iterable[dict[str, Any]], offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    count = 0
    page: list[dict[str, Any]] = []
    for item in items:
        if offset <= count < offset + limit:
            page.append(item)
        count += 1
    return count, page


class DynamoTaskRepository:
    """Key: task_id (N); `expires_at` is the table's TTL attribute."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")

    def _item(self, task: Task) -> dict[str, Any]:
        return _to_item(
            {
                "task_id": task.task_id,
                "account_id": task.account_id,
                "status": task.status.value,
                "kind": task.kind.value,
                "expires_at": task.expires_at,
                "document": task.model_dump_json(),
            }
        )

    def put_new(self, task: Task) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._item(task),
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except ClientError as error:
            raise _unavailable(error, "store the task") from None

    def get(self, task_id: int) -> Task | None:
        try:
            response = self._db.get_item(TableName=self._table, Key=_to_item({"task_id": task_id}), ConsistentRead=True)
        except ClientError as error:
            raise _unavailable(error, "read the task") from None
        item = response.get("Item")
        return None if item is None else Task.model_validate_json(_from_item(item)["document"])

    def get_many(self, task_ids: Iterable[int]) -> list[Task]:
        ids = list(task_ids)
        tasks: list[Task] = []
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [_to_item({"task_id": task_id}) for task_id in ids[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            try:
                while request:
                    response = self._db.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        tasks.append(Task.model_validate_json(_from_item(item)["document"]))
                    request = response.get("UnprocessedKeys") or {}
            except ClientError as error:
                raise _unavailable(error, "read tasks") from None
        return tasks

    def finish(self, task: Task) -> bool:
        """Record a final status once: False when the task already ended (a duplicate delivery)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._item(task),
                ConditionExpression="attribute_exists(task_id) AND #status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_item({":pending": "pending"}),
            )
            return True
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise _unavailable(error, "finish the task") from None

    def delete(self, task_id: int) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key=_to_item({"task_id": task_id}))
        except ClientError as error:
            raise _unavailable(error, "delete the task") from None


class DynamoApiKeyRepository:
    """Key: key_hash (S), an HMAC of the key; the key itself is never stored."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")

    def put(self, key_hash: str, key: ApiKey) -> None:
        self._db.put_item(
            TableName=self._table,
            Item=_to_item(
                {
                    "key_hash": key_hash,
                    "key_id": key.key_id,
                    "account_id": key.account_id,
                    "create_date": key.create_date.isoformat(),
                    "name": key.name,
                }
            ),
        )

    def get(self, key_hash: str) -> ApiKey | None:
        try:
            response = self._db.get_item(TableName=self._table, Key=_to_item({"key_hash": key_hash}))
        except ClientError as error:
            raise _unavailable(error, "check the API key") from None
        item = response.get("Item")
        return None if item is None else _api_key(_from_item(item))

    def _scan(self) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"TableName": self._table}
        while True:
            response = self._db.scan(**arguments)
            for item in response.get("Items", []):
                yield _from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete_by_id(self, key_id: str) -> bool:
        deleted = False
        for item in self._scan():
            if item["key_id"] == key_id:
                self._db.delete_item(TableName=self._table, Key=_to_item({"key_hash": item["key_hash"]}))
                deleted = True
        return deleted

    def list(self) -> list[ApiKey]:
        return [_api_key(item) for item in self._scan()]


def _api_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"],
        account_id=item["account_id"],
        create_date=datetime.fromisoformat(item["create_date"]),
        name=item.get("name"),
    )


class DynamoIdAllocator:
    """Integer ids from an atomic counter (UpdateItem ADD), so ids never repeat."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")

    def next_id(self, counter: str) -> int:
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=_to_item({"name": counter}),
                UpdateExpression="ADD #value :one",
                ExpressionAttributeNames={"#value": "value"},
                ExpressionAttributeValues=_to_item({":one": 1}),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            raise _unavailable(error, "allocate an id") from None
        return int(_from_item(response["Attributes"])["value"])
