"""Chunked JSON Lines manifests: written CHUNK_ITEMS lines per object, read a page or a chunk at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from tensorgate import dataset_layout
from tensorgate.dataset_models import CHUNK_ITEMS


class ManifestStore(Protocol):
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...


def encode_lines(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def decode_lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


class ManifestWriter:
    """Lines appended in order, stored every CHUNK_ITEMS lines: memory holds one chunk, whatever the total."""

    def __init__(self, store: ManifestStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._pending: list[dict[str, Any]] = []
        self._chunk = 0
        self.count = 0

    def add(self, line: dict[str, Any]) -> None:
        self._pending.append(line)
        self.count += 1
        if len(self._pending) == CHUNK_ITEMS:
            self._flush()

    def close(self) -> int:
        if self._pending:
            self._flush()
        return self.count

    def _flush(self) -> None:
        self._store.put(
            dataset_layout.items_chunk_key(self._prefix, self._chunk),
            encode_lines(self._pending),
            "application/x-ndjson",
        )
        self._chunk += 1
        self._pending = []


def read_page(store: ManifestStore, prefix: str, total: int, offset: int, limit: int) -> list[dict[str, Any]]:
    """Lines `offset` to `offset + limit` of a manifest of `total` lines: one or two chunks read, never all."""
    end = min(total, offset + limit)
    lines: list[dict[str, Any]] = []
    position = offset
    while position < end:
        chunk = position // CHUNK_ITEMS
        body = decode_lines(store.get(dataset_layout.items_chunk_key(prefix, chunk)))
        start = position - chunk * CHUNK_ITEMS
        taken = body[start : start + (end - position)]
        if not taken:
            break
        lines += taken
        position += len(taken)
    return lines


def iter_chunks(store: ManifestStore, prefix: str, total: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Every chunk of a manifest in order, one in memory at a time."""
    for chunk in range((total + CHUNK_ITEMS - 1) // CHUNK_ITEMS):
        yield chunk, decode_lines(store.get(dataset_layout.items_chunk_key(prefix, chunk)))
