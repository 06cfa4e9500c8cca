"""What a list of named resources is asked (page, cursor, search and filters) and what it answers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tensorgate.errors import ValidationFailed
from tensorgate.models import Page

T = TypeVar("T")
U = TypeVar("U")
MAX_FILTER_LENGTH = 200


@dataclass(frozen=True)
class ListQuery:
    """One page: after `cursor` (a previous page's `next`) or else after `offset` items, at most `limit`.

    `search` matches a part of the name, description or author, `name` and `author` a part of theirs (all
    case-insensitive); `status` is exact."""

    limit: int
    offset: int = 0
    cursor: int | None = None
    search: str | None = None
    name: str | None = None
    author: str | None = None
    status: str | None = None

    @property
    def filtered(self) -> bool:
        return any(value for value in (self.search, self.name, self.author, self.status))

    def filters(self) -> dict[str, str]:
        """The filters as query parameters, so the next page's link keeps them."""
        names = ("search", "name", "author", "status")
        return {name: value for name in names if (value := getattr(self, name))}


@dataclass
class ListResult(Generic[T]):
    """A page of items; `count` is every item the query matches (over all pages), `last_key` the sort key
    of the page's last item when more follow (the next page starts after it)."""

    count: int
    items: list[T]
    last_key: int | None = None

    def parsed(self, parse: Callable[[T], U]) -> ListResult[U]:
        return ListResult(count=self.count, items=[parse(item) for item in self.items], last_key=self.last_key)


def encode_cursor(last_key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_key}).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    """The sort key a cursor continues after; anything else is a 400 saying where cursors come from."""
    try:
        padded = text + "=" * (-len(text) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = value["after"]
        if isinstance(after, int) and not isinstance(after, bool) and 0 <= after < 10**18:
            return after
    except (binascii.Error, ValueError, UnicodeError, KeyError, TypeError):
        pass
    raise ValidationFailed(
        "Query parameter 'cursor' is not one this API wrote; follow a page's `next` link, or page with offset.",
        [{"field": "cursor", "message": "is not a cursor from a `next` link"}],
    )


def check_filter(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_LENGTH or any(ord(character) < 0x20 for character in value):
        raise ValidationFailed(
            f"Query parameter {name!r} takes at most {MAX_FILTER_LENGTH} printable characters.",
            [{"field": name, "message": f"must be at most {MAX_FILTER_LENGTH} printable characters"}],
        )
    return value


def to_page(result: ListResult[Any], query: ListQuery, wire: Callable[[Any], Any]) -> Page:
    return Page(
        count=result.count,
        offset=query.offset,
        limit=query.limit,
        results=[wire(item) for item in result.items],
        by_cursor=True,
        next_cursor=None if result.last_key is None else encode_cursor(result.last_key),
        filters=query.filters(),
    )
