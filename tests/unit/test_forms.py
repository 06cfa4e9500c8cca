"""Request bodies: flattened Django-REST keys, JSON text fields decoded by schema type, JSON and multipart parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tensorgate.errors import MalformedRequest, UnsupportedMediaType, ValidationFailed
from tensorgate.forms import (
    MAX_LIST_INDEX,
    decode_json_fields,
    parse_body,
    parse_json_object,
    split_key,
    unflatten,
)
from tensorgate.schemas import JSON_FIELDS, CreateNetwork, validate

BOUNDARY = "unit-boundary"


def multipart(*parts: tuple[str, bytes | str, str | None], close: bool = True) -> bytes:
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        payload = content.encode() if isinstance(content, str) else content
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + payload + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def parse_create(pairs: list[tuple[str, str]]) -> CreateNetwork:
    """What a multipart create does with its text parts: nest, decode JSON fields, validate."""
    result: CreateNetwork = validate(CreateNetwork, decode_json_fields(unflatten(pairs), JSON_FIELDS), "network")
    return result


# -- key paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("name", ["name"]),
        ("metadata.author", ["metadata", "author"]),
        ("preprocessing.inputs[0]tensor_name", ["preprocessing", "inputs", 0, "tensor_name"]),
        ("preprocessing.inputs[0]image.dimension_order", ["preprocessing", "inputs", 0, "image", "dimension_order"]),
        ("postprocessings[1]tensors_output.tensors[12]", ["postprocessings", 1, "tensors_output", "tensors", 12]),
        ("grid[0][1]", ["grid", 0, 1]),
        ("inputs[0].image.source", ["inputs", 0, "image", "source"]),
        ("variables.data-00000-of-00001", ["variables", "data-00000-of-00001"]),
    ],
)
def test_split_key_reads_nesting_and_list_indices(key: str, path: list[str | int]) -> None:
    assert split_key(key) == path


@pytest.mark.parametrize("key", ["", "[0]name", "a..b", "a.", "a[x]", "a[0", "a]", "a[-1]", "a[0]]"])
def test_split_key_refuses_unreadable_paths(key: str) -> None:
    with pytest.raises(MalformedRequest, match="cannot be read as a field path"):
        split_key(key)


# -- nesting -----------------------------------------------------------------------------------


def test_unflatten_nests_dicts_and_lists_in_index_order() -> None:
    nested = unflatten(
        [
            ("name", "flat"),
            ("metadata.author", "me"),
            ("metadata.project.code", "mars"),
            ("preprocessing.inputs[1]tensor_name", "second"),
            ("preprocessing.inputs[0]tensor_name", "first"),
            ("preprocessing.inputs[0]image.dimension_order", "NCHW"),
            ("postprocessings[0]tensors_output.tensors[0]", "prob"),
            ("postprocessings[0]tensors_output.tensors[1]", "logits"),
            ("grid[0][0]", "a"),
            ("grid[0][1]", "b"),
        ]
    )
    assert nested == {
        "name": "flat",
        "metadata": {"author": "me", "project": {"code": "mars"}},
        "preprocessing": {
            "inputs": [{"tensor_name": "first", "image": {"dimension_order": "NCHW"}}, {"tensor_name": "second"}]
        },
        "postprocessings": [{"tensors_output": {"tensors": ["prob", "logits"]}}],
        "grid": [["a", "b"]],
    }


def test_unflatten_keeps_values_as_the_text_sent() -> None:
    nested = unflatten([("preprocessing.batched_output", "True"), ("metadata.epochs", "12"), ("metadata.j", "[1]")])
    assert nested == {"preprocessing": {"batched_output": "True"}, "metadata": {"epochs": "12", "j": "[1]"}}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("inputs[1]tensor_name", "x")], "gaps"),
        ([("inputs[0]tensor_name", "x"), ("inputs[2]tensor_name", "y")], "gaps"),
        ([("inputs[0]tensor_name", "x"), ("inputs.tensor_name", "y")], "mixes"),
        ([("inputs.tensor_name", "y"), ("inputs[0]tensor_name", "x")], "mixes"),
        ([("name", "a"), ("name", "b")], "twice"),
        ([("tags[0]", "a"), ("tags[0]", "b")], "twice"),
        ([("metadata", "{}"), ("metadata.author", "me")], "conflicts"),
        ([(f"tags[{MAX_LIST_INDEX + 1}]", "x")], "above"),
    ],
    ids=[
        "gap_at_start",
        "gap_inside",
        "index_then_name",
        "name_then_index",
        "duplicate",
        "duplicate_index",
        "plain_then_nested",
        "index_too_large",
    ],
)
def test_unflatten_refuses_ambiguous_forms(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        unflatten(pairs)


# -- JSON text decoded by schema type ----------------------------------------------------------


def test_decode_json_fields_decodes_only_object_and_array_fields() -> None:
    fields = {
        "name": '{"looks": "like JSON"}',
        "metadata": '{"author": "me"}',
        "postprocessings": '[{"tensors_output": {"tensors": ["prob"]}}]',
        "preprocessing": {"inputs": []},
    }
    decoded = decode_json_fields(fields, JSON_FIELDS)
    assert decoded["name"] == '{"looks": "like JSON"}', "a string field keeps its text"
    assert decoded["metadata"] == {"author": "me"}
    assert decoded["postprocessings"] == [{"tensors_output": {"tensors": ["prob"]}}]
    assert decoded["preprocessing"] == {"inputs": []}, "an already nested field is left alone"
    assert fields["metadata"] == '{"author": "me"}', "the input is not modified"


@pytest.mark.parametrize("text", ["{not json", "NaN", '{"loss": Infinity}', "[" * 5000])
def test_decode_json_fields_refuses_invalid_json_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationFailed, match="'metadata' must be JSON") as refused:
        decode_json_fields({"metadata": text}, JSON_FIELDS)
    assert refused.value.details == [{"field": "metadata", "message": "is not valid JSON"}]


def test_flattened_text_is_converted_by_the_schema_types() -> None:
    request = parse_create(
        [
            ("name", "123"),
            ("metadata.epochs", "12"),
            ("preprocessing.inputs[0]tensor_name", "456"),
            ("preprocessing.inputs[0]image.pixel_scaling", "2"),
            ("preprocessing.inputs[0]image.target_size", "224x224"),
            ("preprocessing.batched_output", "False"),
            ("postprocessings[0]tensors_output.top_k", "3"),
            ("postprocessings[0]tensors_output.tensors[0]", "prob"),
        ]
    )
    assert request.name == "123" and request.metadata == {"epochs": "12"}
    assert request.preprocessing is not None
    assert request.preprocessing.inputs[0].tensor_name == "456"
    assert request.preprocessing.inputs[0].image.pixel_scaling == 2.0
    assert request.preprocessing.batched_output is False
    assert request.postprocessings[0].tensors_output is not None
    assert request.postprocessings[0].tensors_output.top_k == 3


@pytest.mark.parametrize(("text", "value"), [("True", True), ("False", False), ("1", True), ("0", False)])
def test_flattened_booleans_arrive_as_python_or_digit_text(text: str, value: bool) -> None:
    request = parse_create(
        [
            ("name", "n"),
            ("preprocessing.inputs[0]tensor_name", "data"),
            ("preprocessing.inputs[0]image.color_channels", "RGB"),
            ("preprocessing.batched_output", text),
        ]
    )
    assert request.preprocessing is not None and request.preprocessing.batched_output is value


def test_curl_form_and_flattened_form_give_the_same_request() -> None:
    preprocessing = {"inputs": [{"tensor_name": "data", "image": {"dimension_order": "NCHW", "pixel_scaling": 2.0}}]}
    curl = parse_create([("name", "n"), ("metadata", '{"author": "me"}'), ("preprocessing", json.dumps(preprocessing))])
    flat = parse_create(
        [
            ("name", "n"),
            ("metadata.author", "me"),
            ("preprocessing.inputs[0]tensor_name", "data"),
            ("preprocessing.inputs[0]image.dimension_order", "NCHW"),
            ("preprocessing.inputs[0]image.pixel_scaling", "2.0"),
        ]
    )
    assert curl == flat


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"name": ', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"x": -Infinity}', "not a JSON number"),
        (b'{"x": 1e999}', "out of range"),
        (b"[" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
    ids=["none", "empty", "blank", "truncated", "list", "string", "nan", "infinity", "overflow", "deep", "bytes"],
)
def test_parse_json_object_refuses_what_is_not_one_json_object(body: bytes | None, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        parse_json_object(body)


def test_parse_body_reads_json_by_content_type() -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json", None):
        assert parse_body(content_type, b'{"name": "n"}').fields == {"name": "n"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_parse_body_refuses_other_media_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/json or multipart/form-data"):
        parse_body(content_type, b"name=n")


def test_parse_body_reads_multipart_fields_and_files_by_part_name() -> None:
    form = parse_body(
        f"multipart/form-data; boundary={BOUNDARY}",
        multipart(
            ("name", "flat", None),
            ("preprocessing.inputs[0]tensor_name", "data", None),
            ("saved_model.pb", b"\x00graph\xff", "saved_model.pb"),
            ("mean.npy", b"mean", "renamed-by-the-client.npy"),
        ),
    )
    assert form.fields == {"name": "flat", "preprocessing": {"inputs": [{"tensor_name": "data"}]}}
    assert [(file.name, file.content) for file in form.files] == [
        ("saved_model.pb", b"\x00graph\xff"),
        ("mean.npy", b"mean"),
    ]


def test_parse_body_reads_utf8_part_names_beyond_latin1() -> None:
    # Found by fuzzing: a name outside Latin-1 (sent as UTF-8, as browsers and requests do) was a 500.
    form = parse_body(
        f"multipart/form-data; boundary={BOUNDARY}",
        multipart(("metadata.auteur", "é", None), ("metadata.作者", "me", None), ("données.npy", b"x", "données.npy")),
    )
    assert form.fields == {"metadata": {"auteur": "é", "作者": "me"}}
    assert [file.name for file in form.files] == ["données.npy"]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", multipart(("name", "n", None)), "no boundary"),
        (f"multipart/form-data; boundary={BOUNDARY}", multipart(("name", "n", None), close=False), "truncated"),
        (f"multipart/form-data; boundary={BOUNDARY}", b"", "truncated"),
        (f"multipart/form-data; boundary={BOUNDARY}", multipart(("name", b"\xff\xfe", None)), "not UTF-8"),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            "Content-Disposition",
        ),
    ],
    ids=["no_boundary", "no_closing_boundary", "empty", "field_not_utf8", "part_without_name"],
)
def test_parse_body_refuses_broken_multipart(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        parse_body(content_type, body)


def test_parse_body_limits_the_number_of_parts() -> None:
    parts: list[tuple[str, Any, None]] = [(f"metadata.k{index}", "v", None) for index in range(4)]
    with pytest.raises(MalformedRequest, match="more than 3 parts"):
        parse_body(f"multipart/form-data; boundary={BOUNDARY}", multipart(*parts), max_parts=3)
