"""Search attributes for networks and recognition specs stored before lists could search them (DESIGN §8).

Lists filter on small attributes beside each item's document (`search_text`, `name`, `name_lower`,
`author_lower`, `status`; adapters/listing.py). Items written before those existed have none, so a search or
a lookup by name never finds them. The backfill scans the networks table a page at a time and writes the
attributes the repositories would write today onto every network and spec whose attributes are missing or
stale, each update conditional on the item's version so that a concurrent change is never overwritten.
Running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.adapters.dynamodb import (
    SPECS_PARTITION,
    DynamoNetworkRepository,
    DynamoRecognitionRepository,
    _from_item,
    _to_item,
    _unavailable,
)
from tensorgate.models import Network, RecognitionSpec

SEARCH_ATTRIBUTES = ("search_text", "name", "name_lower", "author_lower", "status")


@dataclass
class BackfillCounts:
    pages: int = 0
    scanned: int = 0  # items read, of every kind
    updated: int = 0  # networks and specs given their attributes
    current: int = 0  # networks and specs whose attributes were already right
    changed_meanwhile: int = 0  # rewritten by the API between the read and the update: written right by it

    def to_wire(self) -> dict[str, int]:
        return dict(self.__dict__)


class SearchBackfill:
    def __init__(self, table: str, counters_table: str, dynamodb: Any | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")
        self._networks = DynamoNetworkRepository(table, self._db, counters_table)
        self._recognition = DynamoRecognitionRepository(table, self._db, counters_table)

    def run(self, page_size: int = 100, on_page: Callable[[BackfillCounts], None] | None = None) -> BackfillCounts:
        counts = BackfillCounts()
        arguments: dict[str, Any] = {"TableName": self._table, "Limit": page_size, "ConsistentRead": True}
        while True:
            try:
                response = self._db.scan(**arguments)
            except ClientError as error:
                raise _unavailable(error, "read the networks table") from None
            counts.pages += 1
            for raw in response.get("Items", []):
                counts.scanned += 1
                self._backfill(_from_item(raw), counts)
            if on_page is not None:
                on_page(counts)
            if "LastEvaluatedKey" not in response:
                return counts
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _expected(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The attributes the item's repository writes today, or None for items lists do not search."""
        partition = str(item["account_id"])
        if "document" not in item:
            return None
        if "#" not in partition:
            written = self._networks._item(Network.model_validate_json(item["document"]))
        elif partition.endswith(SPECS_PARTITION) and partition.count("#") == 1:
            written = self._recognition._spec_item(RecognitionSpec.model_validate_json(item["document"]))
        else:
            return None  # versions, endpoints (written with their attributes), name guards, datasets
        return {name: value for name, value in _from_item(written).items() if name in SEARCH_ATTRIBUTES}

    def _backfill(self, item: dict[str, Any], counts: BackfillCounts) -> None:
        expected = self._expected(item)
        if expected is None:
            return
        if all(item.get(name) == value for name, value in expected.items()):
            counts.current += 1
            return
        names = {f"#{name}": name for name in expected} | {"#version": "version"}
        values = {f":{name}": value for name, value in expected.items()}
        condition = "attribute_not_exists(#version)"
        if item.get("version") is not None:
            condition, values[":version"] = "#version = :version", item["version"]
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_to_item({"account_id": item["account_id"], "network_id": item["network_id"]}),
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in expected),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                counts.changed_meanwhile += 1
                return
            raise _unavailable(error, "update a network's search attributes") from None
        counts.updated += 1
