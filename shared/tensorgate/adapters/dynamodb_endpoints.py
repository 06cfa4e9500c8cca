"""DynamoDB repository for endpoints: records and their account-unique names, in the networks table."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.adapters.dynamodb import _from_item, _to_item, _unavailable
from tensorgate.adapters.listing import PartitionLister
from tensorgate.errors import ConcurrentUpdate, EndpointNotFound, endpoint_name_taken
from tensorgate.listing import ListQuery, ListResult
from tensorgate.models import Endpoint

ENDPOINTS_PARTITION = "#endpoints"
NAMES_PARTITION = "#endpoint-name#"


class DynamoEndpointRepository:
    """Endpoints in the networks table, in a partition of the account (`<account>#endpoints`, sort key the
    endpoint id). Each name holds a guard item `<account>#endpoint-name#<name>` (sort key 0) naming its
    endpoint, written in the same transaction as the record: two creates with one name cannot both win, and
    a lookup by name is one read."""

    def __init__(self, table: str, dynamodb: Any | None = None, counters_table: str | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")
        self._lister = PartitionLister(self._table, self._db, "endpoints", counters_table)

    def _record(self, endpoint: Endpoint) -> dict[str, Any]:
        return _to_item(
            {
                "account_id": endpoint.account_id + ENDPOINTS_PARTITION,
                "network_id": endpoint.endpoint_id,
                "version": endpoint.version,
                **PartitionLister.index_attributes(
                    endpoint.name, endpoint.description, endpoint.author, endpoint.status
                ),
                "document": endpoint.model_dump_json(),
            }
        )

    def _guard_key(self, account_id: str, name: str) -> dict[str, Any]:
        return _to_item({"account_id": account_id + NAMES_PARTITION + name, "network_id": 0})

    def _guard(self, endpoint: Endpoint) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": self._guard_key(endpoint.account_id, endpoint.name)
                | _to_item({"endpoint_id": endpoint.endpoint_id}),
                "ConditionExpression": "attribute_not_exists(network_id)",
            }
        }

    def put_new(self, endpoint: Endpoint) -> None:
        partition = endpoint.account_id + ENDPOINTS_PARTITION
        self._transact(
            [
                self._guard(endpoint),
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._record(endpoint),
                        "ConditionExpression": "attribute_not_exists(network_id)",
                    }
                },
                self._lister.count_change(partition, +1),
            ],
            endpoint,
            "store the endpoint",
            guard_index=0,
        )

    def get(self, account_id: str, endpoint_id: int) -> Endpoint | None:
        try:
            response = self._db.get_item(
                TableName=self._table,
                Key=_to_item({"account_id": account_id + ENDPOINTS_PARTITION, "network_id": endpoint_id}),
                ConsistentRead=True,
            )
        except ClientError as error:
            raise _unavailable(error, "read the endpoint") from None
        item = response.get("Item")
        return None if item is None else Endpoint.model_validate_json(_from_item(item)["document"])

    def get_by_name(self, account_id: str, name: str) -> Endpoint | None:
        try:
            response = self._db.get_item(
                TableName=self._table, Key=self._guard_key(account_id, name), ConsistentRead=True
            )
        except ClientError as error:
            raise _unavailable(error, "look the endpoint up") from None
        item = response.get("Item")
        if item is None:
            return None
        endpoint = self.get(account_id, int(_from_item(item)["endpoint_id"]))
        # A guard outlives its endpoint only between the two writes of a transaction that failed: no endpoint.
        return endpoint if endpoint is not None and endpoint.name == name else None

    def page(self, account_id: str, query: ListQuery) -> ListResult[Endpoint]:
        result = self._lister.page(account_id + ENDPOINTS_PARTITION, query)
        return result.parsed(Endpoint.model_validate_json)

    def replace(self, endpoint: Endpoint, expected_version: int, previous_name: str) -> None:
        """Write the changed record; a rename moves the name's guard in the same transaction."""
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._record(endpoint),
                    "ConditionExpression": "attribute_exists(network_id) AND version = :expected",
                    "ExpressionAttributeValues": _to_item({":expected": expected_version}),
                }
            }
        ]
        guard_index = None
        if endpoint.name != previous_name:
            guard_index = len(actions)
            actions.append(self._guard(endpoint))
            actions.append(
                {"Delete": {"TableName": self._table, "Key": self._guard_key(endpoint.account_id, previous_name)}}
            )
        self._transact(actions, endpoint, "update the endpoint", guard_index=guard_index, changed=True)

    def delete(self, endpoint: Endpoint) -> None:
        partition = endpoint.account_id + ENDPOINTS_PARTITION
        key = _to_item({"account_id": partition, "network_id": endpoint.endpoint_id})
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": key,
                        "ConditionExpression": "attribute_exists(network_id)",
                    }
                },
                {"Delete": {"TableName": self._table, "Key": self._guard_key(endpoint.account_id, endpoint.name)}},
                self._lister.count_change(partition, -1),
            ],
            endpoint,
            "delete the endpoint",
            changed=True,
        )

    def _transact(
        self,
        actions: list[dict[str, Any]],
        endpoint: Endpoint,
        what: str,
        guard_index: int | None = None,
        changed: bool = False,
    ) -> None:
        """`guard_index`: the action claiming the name, whose failed condition means the name is taken."""
        try:
            self._db.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise _unavailable(error, what) from None
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            failed = [index for index, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
            if guard_index is not None and guard_index in failed:
                raise endpoint_name_taken(endpoint.name) from None
            if failed and changed:
                if self.get(endpoint.account_id, endpoint.endpoint_id) is None:
                    raise EndpointNotFound(endpoint.endpoint_id) from None
                raise ConcurrentUpdate(f"Endpoint {endpoint.endpoint_id} changed meanwhile.") from None
            raise _unavailable(error, what) from None
