"""Pages of one partition of a table or index: a key cursor, a stored count, search and filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.dynamodb import _from_item, _to_item, _unavailable
from tensorgate.listing import ListQuery, ListResult

COUNT_PREFIX = "list-count#"
# Items read per request while a filter or an offset looks for its page: DynamoDB reads up to 1 MB anyway.
SCAN_BATCH = 500
INDEXED = "search_text, name_lower, author_lower, #status"


class PartitionLister:
    """Items of a partition `account_id = <partition>` in sort key order (oldest first).

    A page reads from its cursor (`network_id > last_key`) at most `limit + 1` items, so its cost does not
    grow with the partition; `offset` without a cursor skips keys only. The partition's size is an item
    `list-count#<partition>` of the counters table that every create and delete changes in its own
    transaction. Filtered pages read the small index attributes (`search_text`, `name_lower`,
    `author_lower`, `status`) until they hold a page, then the documents of that page only; their count is
    exact when the read reached the end of the partition, else the matches found so far plus one.

    The keys and attribute names are the networks table's by default; a sparse global secondary `index` of
    another table may be listed instead (read eventually consistent, as DynamoDB reads indexes), when its sort
    key is that table's own key, with which the page's documents are read."""

    def __init__(
        self,
        table: str,
        db: Any,
        what: str,
        counters_table: str | None = None,
        *,
        index: str | None = None,
        partition_key: str = "account_id",
        sort_key: str = "network_id",
        document: str = "document",
        status: str = "status",
    ) -> None:
        if counters_table is None:
            from tensorgate.config import get_settings

            counters_table = get_settings().counters_table
        self._table = table
        self._counters = counters_table
        self._db = db
        self._what = what
        self._index = index
        self._partition = partition_key
        self._sort = sort_key
        self._document = document
        self._status = status

    def _query(self, condition: str) -> dict[str, Any]:
        """A query's fixed arguments: the table or index, the key condition, consistency where DynamoDB has it."""
        arguments: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": condition}
        if self._index is None:
            arguments["ConsistentRead"] = True
        else:
            arguments["IndexName"] = self._index
        return arguments

    def _base_key(self, partition: str, key: int) -> dict[str, Any]:
        if self._index is not None:
            return _to_item({self._sort: key})
        return _to_item({self._partition: partition, self._sort: key})

    @staticmethod
    def index_attributes(name: str, description: str, author: str | None, status: str) -> dict[str, Any]:
        author = author or ""
        return {
            "search_text": "\n".join((name, description, author)).casefold(),
            "name": name,
            "name_lower": name.casefold(),
            "author_lower": author.casefold(),
            "status": str(status),
        }

    def count_change(self, partition: str, delta: int) -> dict[str, Any]:
        """A transaction's action moving the stored count by `delta`."""
        return {
            "Update": {
                "TableName": self._counters,
                "Key": _to_item({"name": COUNT_PREFIX + partition}),
                "UpdateExpression": "ADD #items :delta",
                "ExpressionAttributeNames": {"#items": "items"},
                "ExpressionAttributeValues": _to_item({":delta": delta}),
            }
        }

    def stored_count(self, partition: str) -> int:
        try:
            response = self._db.get_item(
                TableName=self._counters, Key=_to_item({"name": COUNT_PREFIX + partition}), ConsistentRead=True
            )
        except ClientError as error:
            raise _unavailable(error, f"count {self._what}") from None
        item = response.get("Item")
        if item is not None:
            return max(0, int(_from_item(item)["items"]))
        # A partition written before counts were stored: counted once by keys, then stored.
        total = sum(1 for _ in self._keys(partition, None, None))
        if total:
            self._db.update_item(**self.count_change(partition, total)["Update"])
        return total

    def last_named(self, partition: str, name: str) -> int | None:
        """The sort key of the newest item named exactly `name` (case-sensitive), reading keys and names only."""
        arguments: dict[str, Any] = self._query(f"{self._partition} = :partition") | {
            "FilterExpression": "#name = :name",
            "ProjectionExpression": self._sort,
            "ExpressionAttributeNames": {"#name": "name"},
            "ExpressionAttributeValues": _to_item({":partition": partition, ":name": name}),
            "ScanIndexForward": False,
        }
        try:
            while True:
                response = self._db.query(**arguments, Limit=SCAN_BATCH)
                for item in response.get("Items", []):
                    return int(_from_item(item)[self._sort])
                if "LastEvaluatedKey" not in response:
                    return None
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as error:
            raise _unavailable(error, f"look {self._what} up") from None

    def page(self, partition: str, query: ListQuery) -> ListResult[str]:
        """A page of `document` attributes (JSON text), with the count and the last key when more follow."""
        if query.filtered:
            return self._filtered(partition, query)
        after = query.cursor
        if after is None and query.offset:
            after = self._key_at(partition, query.offset)
            if after is None:
                return ListResult(count=self.stored_count(partition), items=[])
        items = list(self._read(partition, after, query.limit + 1, projection=None))
        more = len(items) > query.limit
        page = items[: query.limit]
        return ListResult(
            count=self.stored_count(partition),
            items=[item[self._document] for item in page],
            last_key=int(page[-1][self._sort]) if more and page else None,
        )

    def _key_at(self, partition: str, offset: int) -> int | None:
        """The sort key of the `offset`-th item (1-based), the key a page at that offset starts after."""
        for position, item in enumerate(self._read(partition, None, offset, projection=self._sort), start=1):
            if position == offset:
                return int(item[self._sort])
        return None

    def _filtered(self, partition: str, query: ListQuery) -> ListResult[str]:
        skip = 0 if query.cursor is not None else query.offset
        matches: list[int] = []
        seen = 0
        more = False
        for item in self._read(partition, query.cursor, None, projection=f"{self._sort}, {INDEXED}", query=query):
            seen += 1
            if skip:
                skip -= 1
                continue
            if len(matches) == query.limit:
                more = True
                break
            matches.append(int(item[self._sort]))
        documents = self._documents(partition, matches)
        # Matches before this page: the offset its link carries after a cursor, else those skipped here.
        before = query.offset if query.cursor is not None else min(query.offset, seen)
        counted = before + len(matches) + (1 if more else 0)
        return ListResult(
            count=counted,
            items=documents,
            last_key=matches[-1] if more and matches else None,
        )

    def _documents(self, partition: str, keys: list[int]) -> list[str]:
        if not keys:
            return []
        found: dict[int, str] = {}
        request: dict[str, Any] = {
            self._table: {
                "Keys": [self._base_key(partition, key) for key in keys],
                "ConsistentRead": True,
                "ProjectionExpression": f"{self._sort}, #document",
                "ExpressionAttributeNames": {"#document": self._document},
            }
        }
        try:
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = _from_item(raw)
                    found[int(item[self._sort])] = item[self._document]
                request = response.get("UnprocessedKeys") or {}
        except ClientError as error:
            raise _unavailable(error, f"list {self._what}") from None
        return [found[key] for key in keys if key in found]

    def _keys(self, partition: str, after: int | None, limit: int | None) -> Iterator[dict[str, Any]]:
        return self._read(partition, after, limit, projection=self._sort)

    def _read(
        self,
        partition: str,
        after: int | None,
        limit: int | None,
        projection: str | None,
        query: ListQuery | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items after the key `after`, in key order, `limit` at most (None: all), filtered by `query`."""
        values: dict[str, Any] = {":partition": partition}
        condition = f"{self._partition} = :partition"
        if after is not None:
            condition += f" AND {self._sort} > :after"
            values[":after"] = after
        arguments = self._query(condition)
        names: dict[str, str] = {}
        if projection is not None:
            arguments["ProjectionExpression"] = projection
            if "#status" in projection:
                names["#status"] = self._status
        if query is not None and query.filtered:
            clauses = []
            for field, attribute, value in (
                ("search", "search_text", query.search),
                ("name", "name_lower", query.name),
                ("author", "author_lower", query.author),
            ):
                if value:
                    clauses.append(f"contains({attribute}, :{field})")
                    values[f":{field}"] = value.casefold()
            if query.status:
                clauses.append("#status = :status")
                names["#status"] = self._status
                values[":status"] = query.status
            arguments["FilterExpression"] = " AND ".join(clauses)
        if names:
            arguments["ExpressionAttributeNames"] = names
        arguments["ExpressionAttributeValues"] = _to_item(values)
        remaining = limit
        try:
            while remaining is None or remaining > 0:
                batch = SCAN_BATCH if remaining is None or query is not None else min(remaining, SCAN_BATCH)
                response = self._db.query(**arguments, Limit=batch)
                for raw in response.get("Items", []):
                    yield _from_item(raw)
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
                if "LastEvaluatedKey" not in response:
                    return
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as error:
            raise _unavailable(error, f"list {self._what}") from None
