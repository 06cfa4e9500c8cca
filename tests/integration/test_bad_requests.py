"""Malformed and hostile requests through the gateway emulation: the right 4xx, one JSON sentence, no write."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY, stored_state
from tests.integration.test_inference_api import ready_network
from tests.samples import IMAGE

BOUNDARY = "tensorgate-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
JSON = "application/json"
MODEL_FILES = {"saved_model.pb": b"graph", "mean.npy": b"mean"}

Part = tuple[str, bytes | str, str | None]  # form name, content, file name (None for a text field)


def multipart_body(parts: list[Part], close: bool = True) -> bytes:
    """A multipart/form-data body written by hand, so duplicates and truncation are possible."""
    chunks = []
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        payload = content.encode() if isinstance(content, str) else content
        chunks.append(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + payload + b"\r\n")
    return b"".join(chunks) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def preprocessing(**image: Any) -> dict[str, Any]:
    return {"inputs": [{"tensor_name": "data", "image": {**IMAGE, **image}}], "batched_output": True}


def create_parts(files: dict[str, bytes] | None = None, drop: tuple[str, ...] = (), **fields: Any) -> list[Part]:
    """The seed's cURL form: JSON-string fields plus one part per file, named by its file name."""
    values: dict[str, Any] = {"name": "my network", "framework": "tensorflow-1.x", "preprocessing": preprocessing()}
    values |= fields
    parts: list[Part] = [
        (name, value if isinstance(value, str) else json.dumps(value), None)
        for name, value in values.items()
        if name not in drop
    ]
    parts += [(name, content, name) for name, content in (MODEL_FILES if files is None else files).items()]
    return parts


def multipart_create(files: dict[str, bytes] | None = None, **fields: Any) -> bytes:
    return multipart_body(create_parts(files, **fields))


def json_body(**fields: Any) -> bytes:
    return json.dumps({"name": "my network", **fields}).encode()


@dataclass(frozen=True)
class BadRequest:
    status: int
    method: str = "POST"
    path: str = "/v0.7/networks/"
    body: bytes | None = None
    content_type: str | None = None
    api_key: str | None = DEV_KEY
    # A word the sentence must contain: the refusal names what the caller has to fix.
    mentions: str = ""
    # Create one network (id 1) first, for the cases that address an existing network.
    given_network: bool = False
    # Create one recognition spec (id 1, two labels) first, for the cases that address it.
    given_spec: bool = False
    # Create network 1 as the converter leaves it ready (one output, "probabilities"), for version cases.
    given_ready_network: bool = False
    # Create network 1 and an endpoint on it (id 1, named "pets") first, for the cases that address it.
    given_endpoint: bool = False
    environment: dict[str, str] = field(default_factory=dict)


def create(
    body: bytes, status: int = 400, mentions: str = "", content_type: str = MULTIPART, **more: Any
) -> BadRequest:
    return BadRequest(status=status, body=body, content_type=content_type, mentions=mentions, **more)


def json_create(status: int = 400, mentions: str = "", **fields: Any) -> BadRequest:
    return create(json_body(**fields), status, mentions, content_type=JSON)


def patch(changes: Any, status: int = 400, mentions: str = "", network: str = "1", **more: Any) -> BadRequest:
    body = changes if isinstance(changes, bytes) else json.dumps(changes).encode()
    return BadRequest(
        status=status,
        method="PATCH",
        path=f"/v0.7/networks/{network}/",
        body=body,
        content_type=more.pop("content_type", JSON),
        mentions=mentions,
        given_network=True,
        **more,
    )


def get(path: str, status: int, mentions: str = "", **more: Any) -> BadRequest:
    return BadRequest(status=status, method="GET", path=path, mentions=mentions, **more)


SPEC_LABELS = [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]


def endpoint_create(mentions: str, given_endpoint: bool = False, **fields: Any) -> BadRequest:
    body = {"name": "pets", "network_id": 1} | fields
    return BadRequest(
        400,
        path="/v0.7/endpoints/",
        body=json.dumps(body).encode(),
        content_type=JSON,
        mentions=mentions,
        given_endpoint=given_endpoint,
        given_network=not given_endpoint,
    )


def job_create(mentions: str, inputs: dict[str, Any], status: int = 400, **fields: Any) -> BadRequest:
    body = {"name": "shelves", "network_id": 1, "inputs": inputs} | fields
    return BadRequest(
        status,
        path="/v0.7/jobs/",
        body=json.dumps(body).encode(),
        content_type=JSON,
        mentions=mentions,
        given_network=True,
    )


def endpoint_call(method: str, path: str, body: dict[str, Any], mentions: str, status: int = 400) -> BadRequest:
    return BadRequest(
        status,
        method=method,
        path=path,
        body=json.dumps(body).encode(),
        content_type=JSON,
        mentions=mentions,
        given_endpoint=True,
    )


def spec_create(mentions: str, **fields: Any) -> BadRequest:
    body = {"name": "pets", "outputs": [{"labels": {"labels": SPEC_LABELS}}], **fields}
    return BadRequest(
        400, path="/v0.7/recognition/specs/", body=json.dumps(body).encode(), content_type=JSON, mentions=mentions
    )


def spec_patch(changes: Any, mentions: str, status: int = 400) -> BadRequest:
    return BadRequest(
        status,
        method="PATCH",
        path="/v0.7/recognition/specs/1/",
        body=json.dumps(changes).encode(),
        content_type=JSON,
        mentions=mentions,
        given_spec=True,
    )


def version_create(mentions: str, status: int = 400, ready: bool = False, **fields: Any) -> BadRequest:
    post = [{"classification": {"output_tensor": "prob", "thresholds": [0.5, 0.5]}}]
    body = {"spec_id": 1, "network_id": 1, "post_processings": post, **fields}
    return BadRequest(
        status,
        path="/v0.7/recognition/versions/",
        body=json.dumps(body).encode(),
        content_type=JSON,
        mentions=mentions,
        given_network=not ready,
        given_ready_network=ready,
        given_spec=True,
    )


def ready_version_create(mentions: str, *post_processings: dict[str, Any], **fields: Any) -> BadRequest:
    """A version on a ready network whose only output is "probabilities": what is refused is the binding."""
    return version_create(mentions, ready=True, post_processings=list(post_processings), **fields)


def classifying(tensor: str = "probabilities", thresholds: tuple[float, ...] = (0.5, 0.5)) -> dict[str, Any]:
    return {"classification": {"output_tensor": tensor, "thresholds": list(thresholds)}}


def inference(path: str, status: int, mentions: str, **more: Any) -> BadRequest:
    body = {"inputs": [{"image": {"source": "https://example.com/a.jpg"}}]}
    return BadRequest(status, path=path, body=json.dumps(body).encode(), content_type=JSON, mentions=mentions, **more)


CASES: dict[str, BadRequest] = {
    # -- bodies that cannot be read ------------------------------------------------------------
    "bad_json": create(b'{"name": "x",', mentions="JSON", content_type=JSON),
    "body_is_a_list": create(b'["name", "x"]', mentions="object", content_type=JSON),
    "body_is_a_string": create(b'"my network"', mentions="object", content_type=JSON),
    "empty_body": create(b"", mentions="empty", content_type=JSON),
    "whitespace_body_without_content_type": BadRequest(400, body=b"  \n", mentions="empty"),
    "json_nan_constant": create(b'{"name": "x", "metadata": {"loss": NaN}}', mentions="JSON", content_type=JSON),
    "json_infinite_number": create(b'{"name": "x", "metadata": {"loss": 1e999}}', mentions="JSON", content_type=JSON),
    "deeply_nested_json": create(b'{"name": "x", "metadata": ' + b"[" * 100_000, mentions="JSON", content_type=JSON),
    "text_plain_content_type": create(json_body(), 415, mentions="Content-Type", content_type="text/plain"),
    "form_urlencoded_content_type": create(
        b"name=my+network", 415, mentions="multipart/form-data", content_type="application/x-www-form-urlencoded"
    ),
    "multipart_without_boundary": create(multipart_create(), mentions="boundary", content_type="multipart/form-data"),
    "truncated_multipart": create(multipart_create()[:-60], mentions="multipart"),
    "multipart_part_without_name": create(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(), mentions="name"
    ),
    "multipart_field_not_utf8": create(multipart_body([("name", b"\xff\xfe\xfa", None)]), mentions="UTF-8"),
    "multipart_text_field_twice": create(multipart_body([("name", "a", None), *create_parts()]), mentions="twice"),
    # -- preprocessing enums and sizes ---------------------------------------------------------
    "dimension_order_not_an_order": json_create(
        preprocessing=preprocessing(dimension_order="CHWN"), mentions="dimension_order"
    ),
    "resize_type_unknown": json_create(preprocessing=preprocessing(resize_type="STRETCH"), mentions="resize_type"),
    "color_channels_unknown": json_create(
        preprocessing=preprocessing(color_channels="RGBA"), mentions="color_channels"
    ),
    "data_type_unknown": json_create(preprocessing=preprocessing(data_type="FLOAT64"), mentions="data_type"),
    "resampling_unknown": json_create(preprocessing=preprocessing(resampling="exactly"), mentions="resampling"),
    "framework_unknown": json_create(framework="theano", mentions="framework"),
    "conversion_opset_too_high": json_create(conversion_options={"opset": 21}, mentions="opset"),
    "conversion_signature_with_spaces": json_create(
        conversion_options={"signature": "serving default"}, mentions="signature"
    ),
    "target_size_letters": json_create(preprocessing=preprocessing(target_size="abc"), mentions="target_size"),
    "target_size_zero_width": json_create(preprocessing=preprocessing(target_size="0x10"), mentions="target_size"),
    "target_size_missing_height": json_create(preprocessing=preprocessing(target_size="224x"), mentions="target_size"),
    "target_size_huge": json_create(preprocessing=preprocessing(target_size="100000x100000"), mentions="target_size"),
    "network_resize_with_width_and_height": json_create(
        preprocessing=preprocessing(resize_type="NETWORK", target_size="224x224"), mentions="NETWORK"
    ),
    "squash_resize_with_one_side": json_create(
        preprocessing=preprocessing(resize_type="SQUASH", target_size="512"), mentions="SQUASH"
    ),
    "pixel_scaling_negative": json_create(preprocessing=preprocessing(pixel_scaling=-1), mentions="pixel_scaling"),
    "pixel_scaling_not_a_number": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("preprocessing.inputs[0]tensor_name", "data", None),
                ("preprocessing.inputs[0]image.pixel_scaling", "a lot", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="pixel_scaling",
    ),
    "batched_output_not_a_boolean": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("preprocessing.inputs[0]tensor_name", "data", None),
                ("preprocessing.inputs[0]image.color_channels", "RGB", None),
                ("preprocessing.batched_output", "perhaps", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="batched_output",
    ),
    "no_inputs": json_create(preprocessing={"inputs": []}, mentions="inputs"),
    "two_inputs_feed_one_tensor": json_create(
        preprocessing={"inputs": [{"tensor_name": "data", "image": {}}, {"tensor_name": "data", "image": {}}]},
        mentions="data",
    ),
    "preprocessing_not_json_in_curl_form": create(
        multipart_create(preprocessing="{inputs: ["), mentions="preprocessing"
    ),
    # -- mean files ----------------------------------------------------------------------------
    "mean_file_not_uploaded": create(multipart_create(files={"saved_model.pb": b"graph"}), mentions="mean.npy"),
    "mean_file_not_npy": create(
        multipart_create(
            files={"saved_model.pb": b"g", "mean.csv": b"m"},
            preprocessing=preprocessing(mean_file="mean.csv"),
        ),
        mentions=".npy",
    ),
    "mean_file_with_uint8": json_create(preprocessing=preprocessing(data_type="UINT8"), mentions="UINT8"),
    # -- postprocessings -----------------------------------------------------------------------
    "postprocessing_with_both_outputs": json_create(
        postprocessings=[
            {
                "tensors_output": {"tensors": ["prob"]},
                "standard_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"},
            }
        ],
        mentions="exactly one",
    ),
    "postprocessing_with_neither_output": json_create(postprocessings=[{}], mentions="exactly one"),
    "postprocessings_not_a_list": json_create(
        postprocessings={"tensors_output": {"tensors": ["prob"]}}, mentions="postprocessings"
    ),
    # -- unknown fields and field values -------------------------------------------------------
    "unknown_top_level_field": json_create(owner="someone-else", mentions="owner"),
    "unknown_preprocessing_field": json_create(
        preprocessing={**preprocessing(), "normalize": True}, mentions="normalize"
    ),
    "unknown_image_field": json_create(preprocessing=preprocessing(gamma=2.2), mentions="gamma"),
    "read_only_id_on_create": json_create(id=7, mentions="id"),
    "name_missing": create(json.dumps({"description": "no name"}).encode(), mentions="name", content_type=JSON),
    "name_empty": json_create(name="", mentions="name"),
    "name_too_long": json_create(name="n" * 201, mentions="name"),
    "metadata_not_an_object": json_create(metadata=["a", "b"], mentions="metadata"),
    "metadata_over_64_kib": json_create(metadata={"blob": "x" * (64 * 1024)}, mentions="metadata"),
    "archive_name_bad_suffix": json_create(archive_name="model.rar", mentions="archive_name"),
    "archive_name_with_directory": json_create(archive_name="../model.zip", mentions="archive_name"),
    "archive_name_with_files": create(multipart_create(archive_name="model.zip"), mentions="archive_name"),
    # -- flattened (Django-REST) keys ----------------------------------------------------------
    "flattened_list_index_gap": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("preprocessing.inputs[1]tensor_name", "data", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="gaps",
    ),
    "flattened_index_mixed_with_names": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("postprocessings[0]tensors_output.tensors[0]", "prob", None),
                ("postprocessings.labels", "x", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="mixes",
    ),
    "flattened_key_unreadable": create(
        multipart_body(
            [("name", "flat", None), ("metadata..author", "me", None), ("saved_model.pb", b"g", "saved_model.pb")]
        ),
        mentions="metadata..author",
    ),
    "flattened_list_index_huge": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("postprocessings[99999]tensors_output.tensors[0]", "p", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="index",
    ),
    "flattened_field_and_json_field_together": create(
        multipart_body(
            [
                ("name", "flat", None),
                ("metadata", "{}", None),
                ("metadata.author", "me", None),
                ("saved_model.pb", b"g", "saved_model.pb"),
            ]
        ),
        mentions="metadata",
    ),
    # -- files ---------------------------------------------------------------------------------
    "file_name_parent_directory": create(multipart_create(files={**MODEL_FILES, "../x.pb": b"g"}), mentions=".."),
    "file_name_absolute": create(multipart_create(files={**MODEL_FILES, "/etc/passwd": b"root"}), mentions="absolute"),
    "file_name_windows_absolute": create(
        multipart_create(files={**MODEL_FILES, "C:\\x.pb": b"g"}), mentions="absolute"
    ),
    "file_name_with_separator": create(multipart_create(files={**MODEL_FILES, "a/b.pb": b"g"}), mentions="separator"),
    "file_name_variables_escape": create(
        multipart_create(files={**MODEL_FILES, "variables/../x": b"g"}), mentions=".."
    ),
    "file_name_hidden": create(multipart_create(files={**MODEL_FILES, ".bashrc": b"x"}), mentions=".bashrc"),
    "file_name_reserved_manifest": create(
        multipart_create(files={**MODEL_FILES, "manifest.json": b"{}"}), mentions="reserved"
    ),
    "empty_model_file": create(
        multipart_create(files={**MODEL_FILES, "saved_model.pb": b""}), mentions="saved_model.pb"
    ),
    "empty_variables_index": create(
        multipart_create(files={**MODEL_FILES, "variables.index": b"", "variables.data-00000-of-00001": b"v"}),
        mentions="variables.index",
    ),
    "empty_mean_file": create(
        multipart_create(files={**MODEL_FILES, "mean.npy": b""}, preprocessing=preprocessing(mean_file="mean.npy")),
        mentions="'mean.npy' is empty",
    ),
    "empty_declared_test_data": create(
        multipart_create(files={**MODEL_FILES, "test_input.npz": b""}), mentions="test_input.npz"
    ),
    "no_model_file": create(multipart_create(files={"mean.npy": b"m", "labels.txt": b"cat"}), mentions="model file"),
    "duplicated_file_part": create(
        multipart_body([*create_parts(), ("saved_model.pb", b"other graph", "saved_model.pb")]), mentions="twice"
    ),
    "oversized_file_part": create(
        multipart_create(files={"saved_model.pb": b"g" * 2048, "mean.npy": b"m"}),
        413,
        mentions="presigned",
        environment={"MAX_FILE_BYTES": "1024"},
    ),
    # -- keys and accounts ---------------------------------------------------------------------
    "create_without_key": replace(json_create(401, mentions="X-API-KEY"), api_key=None),
    "create_with_unknown_key": replace(json_create(401, mentions="API key"), api_key="tg_not_a_real_key_0000000000"),
    "key_too_short": get("/v0.7/networks/", 401, mentions="API key", api_key="abc"),
    "other_accounts_network_get": get("/v0.7/networks/1/", 404, mentions="1", api_key=OTHER_KEY, given_network=True),
    "other_accounts_network_patch": patch({"name": "mine now"}, 404, mentions="1", api_key=OTHER_KEY),
    "other_accounts_network_delete": BadRequest(
        404, method="DELETE", path="/v0.7/networks/1/", api_key=OTHER_KEY, given_network=True, mentions="1"
    ),
    "other_accounts_task": get("/v0.7/tasks/1/", 404, mentions="1", api_key=OTHER_KEY, given_network=True),
    # -- ids and query parameters --------------------------------------------------------------
    "network_id_not_an_integer": get("/v0.7/networks/abc/", 404, mentions="integer"),
    "network_id_negative": get("/v0.7/networks/-1", 404, mentions="integer"),
    "network_id_too_long": get("/v0.7/networks/" + "9" * 40, 404, mentions="integer"),
    "network_id_unknown": get("/v0.7/networks/424242/", 404, mentions="424242"),
    "delete_non_integer_id": BadRequest(404, method="DELETE", path="/v0.7/networks/abc", mentions="integer"),
    "public_network_unknown_slug": get("/v0.7/networks/public/no-such-network/", 404, mentions="no-such-network"),
    "task_id_not_an_integer": get("/v0.7/tasks/first/", 404, mentions="integer"),
    "offset_negative": get("/v0.7/networks/?offset=-1", 400, mentions="offset"),
    "offset_not_a_number": get("/v0.7/networks/?offset=ten", 400, mentions="offset"),
    "offset_beyond_maximum": get("/v0.7/networks/?offset=99999999999", 400, mentions="offset"),
    "limit_zero": get("/v0.7/networks/?limit=0", 400, mentions="limit"),
    "limit_over_maximum": get("/v0.7/networks/?limit=101", 400, mentions="limit"),
    "limit_fractional_on_public_list": get("/v0.7/networks/public/?limit=2.5", 400, mentions="limit"),
    "task_ids_not_integers": get("/v0.7/tasks/?task_ids=1&task_ids=two", 400, mentions="task_ids"),
    "task_ids_missing": get("/v0.7/tasks/", 400, mentions="task_ids"),
    "task_ids_too_many": get("/v0.7/tasks/?task_ids=" + ",".join(str(i) for i in range(1, 102)), 400, mentions="100"),
    # -- updates -------------------------------------------------------------------------------
    "patch_preprocessing_is_immutable": patch({"preprocessing": preprocessing()}, mentions="preprocessing"),
    "patch_framework_is_immutable": patch({"framework": "onnx"}, mentions="framework"),
    "patch_id_is_immutable": patch({"id": 2}, mentions="id"),
    "patch_task_id_is_immutable": patch({"task_id": 99}, mentions="task_id"),
    "patch_postprocessings_is_immutable": patch({"postprocessings": []}, mentions="postprocessings"),
    "patch_unknown_field": patch({"colour": "blue"}, mentions="colour"),
    "patch_bad_json": patch(b"{name: 'x'}", mentions="JSON"),
    "patch_body_not_an_object": patch([{"name": "x"}], mentions="object"),
    "patch_name_empty": patch({"name": ""}, mentions="name"),
    "patch_metadata_not_an_object": patch({"metadata": "author=me"}, mentions="metadata"),
    "patch_form_urlencoded": patch(
        b"name=x", 415, mentions="Content-Type", content_type="application/x-www-form-urlencoded"
    ),
    "patch_with_a_file": patch(
        multipart_body([("name", "x", None), ("saved_model.pb", b"g", "saved_model.pb")]),
        mentions="file",
        content_type=MULTIPART,
    ),
    "patch_non_integer_id": patch({"name": "x"}, 404, mentions="integer", network="abc"),
    # -- recognition specs and versions ---------------------------------------------------------
    "spec_without_outputs": spec_create("outputs", outputs=None),
    "spec_outputs_empty": spec_create("outputs", outputs=[]),
    "spec_label_ids_repeated": spec_create(
        "distinct", outputs=[{"labels": {"labels": [{"id": 3, "name": "a"}, {"id": 3, "name": "b"}]}}]
    ),
    "spec_roi_unknown": spec_create("roi", outputs=[{"labels": {"roi": "POLYGON", "labels": SPEC_LABELS}}]),
    "spec_patch_outputs_is_immutable": spec_patch({"outputs": []}, "outputs"),
    "spec_patch_unknown_field": spec_patch({"colour": "blue"}, "colour"),
    "spec_patch_current_version_unknown": spec_patch({"current_version_id": 424242}, "current_version_id"),
    "spec_create_with_a_file": BadRequest(
        400,
        path="/v0.7/recognition/specs/",
        body=multipart_body([("name", "pets", None), ("labels.txt", b"cat\ndog", "labels.txt")]),
        content_type=MULTIPART,
        mentions="JSON fields only",
    ),
    "spec_non_integer_id": get("/v0.7/recognition/specs/abc/", 404, mentions="integer"),
    "version_unknown_spec": version_create("spec_id", spec_id=424242),
    "version_network_not_ready": version_create("ready", status=409),
    "version_two_kinds_in_one": version_create(
        "exactly one",
        post_processings=[
            {
                "classification": {"output_tensor": "prob", "thresholds": [0.5, 0.5]},
                "detection": {"direct_output": {"boxes_tensor": "b", "scores_tensor": "s"}, "thresholds": [0.5, 0.5]},
            }
        ],
    ),
    "version_detection_two_decoders": version_create(
        "exactly one of direct_output, anchored_output or yolo_output",
        post_processings=[
            {
                "detection": {
                    "direct_output": {"boxes_tensor": "b", "scores_tensor": "s"},
                    "yolo_output": {"output_tensor": "o", "layout": "v8"},
                    "thresholds": [0.5, 0.5],
                }
            }
        ],
    ),
    "version_yolo_layout_unknown": version_create(
        "layout",
        post_processings=[{"detection": {"yolo_output": {"output_tensor": "o", "layout": "v3"}, "thresholds": [0.5]}}],
    ),
    "version_anchored_three_variances": version_create(
        "variances",
        post_processings=[
            {
                "detection": {
                    "anchored_output": {
                        "deltas_tensor": "d",
                        "scores_tensor": "s",
                        "anchors_tensor": "a",
                        "variances": [0.1, 0.1, 0.2],
                    },
                    "thresholds": [0.5],
                }
            }
        ],
    ),
    "version_threshold_over_one": version_create(
        "thresholds", post_processings=[{"classification": {"output_tensor": "prob", "thresholds": [0.5, 1.5]}}]
    ),
    "version_unknown_network": version_create("network_id", network_id=424242),
    "version_thresholds_not_one_per_label": ready_version_create("thresholds", classifying(thresholds=(0.5,))),
    "version_more_post_processings_than_outputs": ready_version_create(
        "post_processings", classifying(), classifying()
    ),
    "version_output_tensor_unknown": ready_version_create("logits", classifying(tensor="logits")),
    "version_detection_for_a_classification_output": ready_version_create(
        "roi",
        {
            "detection": {
                "direct_output": {"boxes_tensor": "probabilities", "scores_tensor": "probabilities"},
                "thresholds": [0.5, 0.5],
            }
        },
    ),
    "version_nms_threshold_over_one": version_create(
        "nms_threshold",
        post_processings=[
            {
                "detection": {
                    "direct_output": {"boxes_tensor": "b", "scores_tensor": "s"},
                    "thresholds": [0.5, 0.5],
                    "nms_threshold": 1.5,
                }
            }
        ],
    ),
    "spec_inference_without_current_version": inference(
        "/v0.7/recognition/specs/1/inference", 409, "current version", given_spec=True
    ),
    "spec_inference_unknown_spec": inference("/v0.7/recognition/specs/424242/inference", 404, "424242"),
    "version_inference_unknown_version": inference("/v0.7/recognition/versions/424242/inference", 404, "424242"),
    "version_inference_non_integer_id": inference("/v0.7/recognition/versions/latest/inference", 404, "integer"),
    # -- endpoints, search and lookup ------------------------------------------------------------
    "endpoint_name_taken": endpoint_create("'pets'", given_endpoint=True),
    "endpoint_two_targets": endpoint_create("exactly one", name="other", recognition_spec_id=1),
    "endpoint_unknown_network": endpoint_create("network_id", name="other", network_id=424242),
    "endpoint_replicas_over_maximum": endpoint_create("replicas", name="other", replicas=1000),
    "endpoint_canary_weight_one": endpoint_create("weight", name="other", canary={"network_id": 1, "weight": 1}),
    "endpoint_patch_author_read_only": endpoint_call("PATCH", "/v0.7/endpoints/1", {"author": "me"}, "author"),
    "endpoint_patch_two_targets": endpoint_call(
        "PATCH", "/v0.7/endpoints/1", {"network_id": 1, "recognition_version_id": 1}, "targets"
    ),
    "endpoint_patch_null_replicas": endpoint_call("PATCH", "/v0.7/endpoints/1", {"replicas": None}, "replicas"),
    "endpoint_predict_nothing_to_predict": endpoint_call("POST", "/v0.7/endpoints/1/predict", {}, "features"),
    "endpoint_predict_feature_neither_image_nor_array": endpoint_call(
        "POST", "/v0.7/endpoints/1/predict", {"features": [{"x": 0.5}]}, "features[0]"
    ),
    "endpoint_predict_wait_not_seconds": endpoint_call(
        "POST", "/v0.7/endpoints/1/predict?wait=later", {"features": ["aGVsbG8="]}, "wait"
    ),
    "endpoint_predict_network_pending": endpoint_call(
        "POST", "/v0.7/endpoints/1/predict", {"features": ["aGVsbG8="]}, "pending", status=409
    ),
    "endpoint_lookup_without_name": get("/v0.7/endpoints/lookup", 400, mentions="name"),
    "endpoint_list_forged_cursor": get("/v0.7/endpoints/?cursor=eyJhZnRlciI6IC0xfQ", 400, mentions="cursor"),
    "network_search_too_long": get("/v0.7/networks/?search=" + "x" * 201, 400, mentions="search"),
    "network_lookup_without_name": get("/v0.7/networks/lookup?name=", 400, mentions="name"),
    # -- batch jobs ----------------------------------------------------------------------------
    "job_urls_and_prefix": job_create("exactly one", {"urls": ["https://example.com/a.jpg"], "prefix": "s3://x/"}),
    "job_no_inputs": job_create("exactly one", {}),
    "job_url_not_http": job_create("http(s)", {"urls": ["file:///etc/passwd"]}),
    "job_prefix_of_another_account": job_create("upload prefix", {"prefix": "s3://tensorgate-models/uploads/other/"}),
    "job_prefix_without_objects": job_create(
        "no item", {"prefix": "s3://tensorgate-local-models-123456789012-us-east-1/uploads/dev/nothing/"}
    ),
    "job_unknown_network": job_create("network", {"urls": ["https://example.com/a.jpg"]}, network_id=424242),
    "job_two_targets": job_create(
        "exactly one target", {"urls": ["https://example.com/a.jpg"]}, recognition_version_id=1
    ),
    "job_unknown_recognition_version": job_create(
        "recognition version", {"urls": ["https://example.com/a.jpg"]}, network_id=None, recognition_version_id=42
    ),
    "job_network_pending": job_create("pending", {"urls": ["https://example.com/a.jpg"]}, status=409),
    "job_cancel_unknown": BadRequest(404, path="/v0.7/jobs/42/cancel", mentions="42"),
    "job_get_non_integer_id": get("/v0.7/jobs/latest/", 404, mentions="integer"),
    # -- routes --------------------------------------------------------------------------------
    "method_not_allowed_on_public_network": BadRequest(
        405, method="DELETE", path="/v0.7/networks/public/some-slug/", mentions="DELETE"
    ),
    "unknown_route": get("/v0.7/models/", 404, mentions="/v0.7/models/"),
}


def assert_one_readable_sentence(text: Any) -> None:
    assert isinstance(text, str), text
    assert 10 <= len(text) <= 600, text
    assert "\n" not in text and "Traceback" not in text, text
    assert text[0].isalnum() or text[0] in "'\"", text
    assert text.endswith("."), text
    # A second sentence starts after a full stop followed by a capital letter.
    assert not re.search(r"[.!?]\s+[A-Z]", text[:-1]), f"more than one sentence: {text}"


def everything_stored(aws: dict[str, Any]) -> dict[str, Any]:
    """`stored_state` plus the id counters: a refused create must not even allocate an id."""
    counters = aws["session"].client("dynamodb").scan(TableName="CountersTable")["Items"]
    return stored_state(aws) | {"counters": counters}


def given_a_network(api: Client) -> None:
    response = api.post(
        "/v0.7/networks/", headers={"X-API-KEY": DEV_KEY}, data=multipart_create(), content_type=MULTIPART
    )
    assert response.status_code == 201, response.text
    assert response.json["id"] == 1


def given_a_spec(api: Client) -> None:
    body = {"name": "pets", "outputs": [{"labels": {"labels": SPEC_LABELS}}]}
    response = api.post("/v0.7/recognition/specs/", headers={"X-API-KEY": DEV_KEY}, json=body)
    assert response.status_code == 201, response.text
    assert response.json["id"] == 1


def test_bad_requests_are_distinct() -> None:
    requests = [
        (c.method, c.path, c.body, c.content_type, c.api_key, c.environment.get("MAX_FILE_BYTES"))
        for c in CASES.values()
    ]
    assert len(set(requests)) == len(requests) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_bad_request_answers_4xx_with_one_sentence_and_writes_nothing(
    name: str, api: Client, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorgate import wiring

    case = CASES[name]
    # Given
    if case.environment:
        for variable, value in case.environment.items():
            monkeypatch.setenv(variable, value)
        wiring.reset()
    if case.given_network:
        given_a_network(api)
    if case.given_ready_network:
        assert ready_network(api)["id"] == 1
    if case.given_spec:
        given_a_spec(api)
    if case.given_endpoint:
        given_a_network(api)
        response = api.post("/v0.7/endpoints", headers={"X-API-KEY": DEV_KEY}, json={"name": "pets", "network_id": 1})
        assert response.status_code == 201 and response.json["id"] == 1, response.text
    before = everything_stored(aws)
    headers = {} if case.api_key is None else {"X-API-KEY": case.api_key}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    # When
    response = api.open(case.path, method=case.method, data=case.body, headers=headers)
    # Then
    assert response.status_code == case.status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.text)
    assert set(body) <= {"error", "details"}, body
    assert_one_readable_sentence(body["error"])
    assert case.mentions.lower() in body["error"].lower(), body["error"]
    assert everything_stored(aws) == before


MEGABYTE = 1024 * 1024


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            multipart_create(files={"saved_model.pb": b"\0" * int(6.5 * MEGABYTE), "mean.npy": b"m"}),
            MULTIPART,
            id="multipart_6.5MB_over_lambda_limit",
        ),
        pytest.param(
            multipart_create(files={"saved_model.pb": b"\0" * int(4.7 * MEGABYTE), "mean.npy": b"m"}),
            MULTIPART,
            id="multipart_4.7MB_over_lambda_limit_once_base64_encoded",
        ),
        pytest.param(json_body(metadata={"blob": "x" * int(6.5 * MEGABYTE)}), JSON, id="json_6.5MB_over_lambda_limit"),
        pytest.param(
            multipart_create(files={"saved_model.pb": b"\0" * (11 * MEGABYTE), "mean.npy": b"m"}),
            MULTIPART,
            id="multipart_11MB_over_api_gateway_limit",
        ),
    ],
)
def test_gateway_body_over_payload_limit_answers_413_pointing_to_presigned_upload(
    body: bytes, content_type: str, api: Client, aws: dict[str, Any]
) -> None:
    # Given
    before = everything_stored(aws)
    # When
    response = api.post("/v0.7/networks/", data=body, headers={"X-API-KEY": DEV_KEY, "Content-Type": content_type})
    # Then
    assert response.status_code == 413, response.text[:500]
    assert response.headers["Content-Type"] == "application/json"
    error = json.loads(response.text)["error"]
    assert_one_readable_sentence(error)
    assert "presigned POST" in error and "JSON body" in error
    assert everything_stored(aws) == before


def test_gateway_body_under_lambda_limit_reaches_the_handler(api: Client) -> None:
    # 4 MB of files grow to about 5.3 MB in the base64 event: still under Lambda's 6 MB.
    body = multipart_create(files={"saved_model.pb": b"\0" * (4 * MEGABYTE), "mean.npy": b"m"})
    response = api.post("/v0.7/networks/", data=body, headers={"X-API-KEY": DEV_KEY, "Content-Type": MULTIPART})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "content_type", "raw_limit_stated"),
    [
        pytest.param(
            multipart_create(files={"saved_model.pb": b"\0" * int(4.7 * MEGABYTE), "mean.npy": b"m"}),
            MULTIPART,
            True,
            id="multipart_4.7MB",
        ),
        pytest.param(json_body(metadata={"blob": "x" * int(6.5 * MEGABYTE)}), JSON, False, id="json_6.5MB"),
    ],
)
def test_gateway_413_states_the_limit_the_body_crossed_without_contradiction(
    body: bytes, content_type: str, raw_limit_stated: bool, api: Client
) -> None:
    # When a body is over what one Lambda invocation takes
    response = api.post("/v0.7/networks/", data=body, headers={"X-API-KEY": DEV_KEY, "Content-Type": content_type})

    # Then the sentence gives the body's own size, and the number it compares with the limit is over it
    assert response.status_code == 413
    error = json.loads(response.text)["error"]
    assert error.startswith(f"The request body is {len(body)} bytes, ")
    compared = int(re.search(r"(\d+) bytes[^,;]*, over the 6291456 bytes", error).group(1))  # type: ignore[union-attr]
    assert compared > 6291456
    # And a multipart caller learns how large a raw multipart body may be: 3/4 of the limit
    assert ("4718592 bytes (4.5 MiB)" in error) is raw_limit_stated
    assert len(body) > 4718592
