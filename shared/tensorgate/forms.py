"""Request bodies: JSON, multipart/form-data (parsed with python-multipart) and flattened keys.

A multipart create comes in two shapes that both parse to the same nested fields:
the cURL form (`-F preprocessing='{"inputs": ...}'`) and the Django-REST flattened form an
existing Python client sends (`preprocessing.inputs[0]image.dimension_order=NCHW`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from tensorgate.errors import MalformedRequest, UnsupportedMediaType, ValidationFailed

MAX_PARTS = 200
MAX_LIST_INDEX = 255
_KEY_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


@dataclass
class Part:
    name: str
    data: bytearray = field(default_factory=bytearray)
    filename: str | None = None
    content_type: str | None = None


@dataclass
class UploadedFile:
    name: str
    content: bytes
    content_type: str | None = None


@dataclass
class Form:
    fields: dict[str, Any]
    files: list[UploadedFile]
    text_pairs: list[tuple[str, str]] = field(default_factory=list)

    def nested_with_files(self) -> dict[str, Any]:
        """Fields where file parts take their place by name (`inputs[0]image.source` holding image bytes)."""
        pairs: list[tuple[str, Any]] = [*self.text_pairs, *((f.name, f.content) for f in self.files)]
        return unflatten(pairs)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def loads_strict(text: bytes | str) -> Any:
    """JSON as RFC 8259 defines it: Python's NaN/Infinity extensions would be echoed back as invalid JSON."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def parse_json_object(body: bytes | str | None) -> dict[str, Any]:
    if body is None or (isinstance(body, (bytes, str)) and not body.strip()):
        raise MalformedRequest("The request body is empty; send a JSON object.")
    try:
        value = loads_strict(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedRequest(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise MalformedRequest("The request body is not valid JSON: it is nested too deeply.") from None
    if not isinstance(value, dict):
        raise MalformedRequest("The request body must be a JSON object.")
    return value


def parse_body(content_type: str | None, body: bytes, max_parts: int = MAX_PARTS) -> Form:
    """Fields and files of a JSON or multipart body; anything else is a 415."""
    kind = media_type(content_type)
    if kind in ("application/json", "") or kind.endswith("+json"):
        return Form(fields=parse_json_object(body), files=[])
    if kind == "multipart/form-data":
        return parse_multipart(content_type or "", body, max_parts)
    raise UnsupportedMediaType(f"Content-Type {kind!r} is not supported; send application/json or multipart/form-data.")


def parse_multipart(content_type: str, body: bytes, max_parts: int = MAX_PARTS) -> Form:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedRequest("The multipart/form-data Content-Type has no boundary.")
    parts = _read_parts(boundary, body, max_parts)
    text_fields: list[tuple[str, str]] = []
    files: list[UploadedFile] = []
    for part in parts:
        if part.filename is not None:
            files.append(UploadedFile(part.name, bytes(part.data), part.content_type))
            continue
        try:
            text_fields.append((part.name, part.data.decode("utf-8")))
        except UnicodeDecodeError:
            raise MalformedRequest(f"Form field {part.name!r} is not UTF-8 text.") from None
    return Form(fields=unflatten(text_fields), files=files, text_pairs=text_fields)


def _read_parts(boundary: bytes, body: bytes, max_parts: int) -> list[Part]:
    parts: list[Part] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[str, str] = {}

    def on_part_begin() -> None:
        headers.clear()
        if len(parts) >= max_parts:
            raise MalformedRequest(f"The form has more than {max_parts} parts.")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        # Latin-1 maps each byte to one character and back: parse_options_header re-encodes the value
        # so, and the UTF-8 names clients send (`name="données.npy"`) are decoded below, as UTF-8.
        headers[header_field.decode("latin-1").lower()] = header_value.decode("latin-1")
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        disposition, params = parse_options_header(headers.get("content-disposition", ""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise MalformedRequest("A multipart part has no 'Content-Disposition: form-data; name=...' header.")
        filename = params.get(b"filename")
        parts.append(
            Part(
                name=name.decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=headers.get("content-type"),
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise MalformedRequest(f"The multipart body cannot be parsed: {error}.") from None
    if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
        raise MalformedRequest("The multipart body is empty or truncated (no closing boundary).")
    return parts


def split_key(key: str) -> list[str | int]:
    """`preprocessing.inputs[0]image.dimension_order` → ['preprocessing', 'inputs', 0, 'image', ...]."""
    tokens: list[str | int] = []
    position = 0
    for match in _KEY_TOKEN.finditer(key):
        if match.start() != position:
            break
        index, name = match.groups()
        tokens.append(int(index) if index is not None else name)
        position = match.end()
    if position != len(key) or not tokens or not isinstance(tokens[0], str):
        raise MalformedRequest(f"Form field name {key!r} cannot be read as a field path.")
    return tokens


def unflatten(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Nest flattened `a.b[0]c` keys; a plain key keeps its text value."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = split_key(key)
        _assign(root, path, value, key)
    return {name: _compact(value, name) for name, value in root.items()}


def _assign(container: Any, path: list[str | int], value: Any, key: str) -> None:
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        if not isinstance(container, dict) or (container and not all(isinstance(k, int) for k in container)):
            raise MalformedRequest(f"Form field {key!r} mixes a list index with named fields.")
        if head > MAX_LIST_INDEX:
            raise MalformedRequest(f"Form field {key!r} has a list index above {MAX_LIST_INDEX}.")
    elif container and any(isinstance(k, int) for k in container):
        raise MalformedRequest(f"Form field {key!r} mixes a list index with named fields.")
    if not rest:
        if head in container:
            raise MalformedRequest(f"Form field {key!r} is given twice.")
        container[head] = value
        return
    child = container.setdefault(head, {})
    if not isinstance(child, dict):
        raise MalformedRequest(f"Form field {key!r} conflicts with a plain field of the same name.")
    _assign(child, rest, value, key)


def _compact(value: Any, key: str) -> Any:
    """Dicts keyed by list indices become lists (indices must run 0..n-1)."""
    if not isinstance(value, dict):
        return value
    if value and all(isinstance(k, int) for k in value):
        indices = sorted(value)
        if indices != list(range(len(indices))):
            raise MalformedRequest(f"Form field {key!r} has list indices with gaps: {indices}.")
        return [_compact(value[i], f"{key}[{i}]") for i in indices]
    return {k: _compact(v, f"{key}.{k}") for k, v in value.items()}


def decode_json_fields(fields: dict[str, Any], json_fields: set[str]) -> dict[str, Any]:
    """Top-level fields whose schema type is an object or array may arrive as JSON text (the cURL form)."""
    decoded = dict(fields)
    for name in json_fields & fields.keys():
        value = fields[name]
        if isinstance(value, str):
            try:
                decoded[name] = loads_strict(value)
            except (ValueError, RecursionError) as error:
                raise ValidationFailed(
                    f"Field {name!r} must be JSON ({error}).",
                    [{"field": name, "message": "is not valid JSON"}],
                ) from None
    return decoded
