"""The OpenAPI 3.1 document of the whole v0.7 API, built from the pydantic models the handlers validate and answer with.

One table here rather than Powertools' per-resolver generator: the API is split over several
functions (one resolver each), and the handlers read their own bodies (JSON or multipart with
flattened keys) so that every refusal keeps the `{"error", "details"}` shape, which Powertools'
request validation would replace with its own 422 body. `tests/integration/test_openapi.py` holds
this table to template.yaml's routes and to the handlers' real answers. Only the docs function
imports this module: the other handlers never pay for it at cold start.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tensorgate import http, responses
from tensorgate.job_models import JobBody, JobPage
from tensorgate.schemas import (
    JSON_FIELDS,
    CreateEndpoint,
    CreateNetwork,
    CreateRecognitionSpec,
    CreateRecognitionVersion,
    UpdateEndpoint,
    UpdateNetwork,
    UpdateRecognitionSpec,
)
from tensorgate.services.endpoints import PredictRequest
from tensorgate.services.inference import InferenceRequest
from tensorgate.services.jobs import JobRequest
from tensorgate.services.networks import MAX_RECORD_BYTES
from tensorgate.services.tasks import MAX_TASK_IDS

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.7"
SECURITY_SCHEME = "ApiKey"
LARGEST_ID = 10**18 - 1  # ids are at most 18 digits (http.integer_id)
ERROR_DESCRIPTIONS = {
    400: "The request is invalid: `error` names the first problem, `details` every field concerned.",
    401: "The X-API-KEY header is missing or names no key.",
    404: "Nothing with this id in this account (another account's network answers the same way).",
    409: "The request conflicts with the resource's state.",
    413: "Too large: a request over API Gateway's 10 MiB, a file over the 6 MiB a direct upload takes, or a "
    f"network's fields over {MAX_RECORD_BYTES // 1024} KiB of JSON.",
    415: "The body is neither application/json nor multipart/form-data.",
    429: "Too many requests with this key; retry after a pause.",
    503: "A backing service kept failing after retries; retry shortly.",
}
# Every authenticated operation can answer these, whatever it does.
AUTHENTICATED_ERRORS = (401, 429, 503)


@dataclass(frozen=True)
class Success:
    status: int
    description: str
    model: type[BaseModel] | None = None
    content: dict[str, Any] | None = None  # for a body no model describes (the document, the docs page)
    links: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str  # the template's event name, so a route and its documentation share one name
    tag: str
    summary: str
    success: Success
    description: str = ""
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, type[BaseModel] | str] = field(default_factory=dict)  # media type → model or form name
    body_example: dict[str, Any] | None = None  # of the JSON body
    errors: dict[int, str | None] = field(default_factory=dict)  # status → description (None: the usual one)
    public: bool = False
    also: tuple[Success, ...] = ()  # other successful answers (a predict's 202)


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id: an integer. Any other text answers 404.",
        "schema": {"type": "integer", "minimum": 0, "maximum": LARGEST_ID},
    }


PAGINATION: tuple[dict[str, Any], ...] = (
    {
        "name": "offset",
        "in": "query",
        "description": "Items to skip.",
        "schema": {"type": "integer", "minimum": 0, "maximum": http.MAX_OFFSET, "default": 0},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": http.MAX_LIMIT, "default": http.DEFAULT_LIMIT},
    },
)
NETWORK_ID = _path_id("network_id", "network")
NETWORK_LINKS = {
    "GetNetwork": {"operationId": "GetNetwork", "parameters": {"network_id": "$response.body#/id"}},
    "UpdateNetwork": {"operationId": "UpdateNetwork", "parameters": {"network_id": "$response.body#/id"}},
    "DeleteNetwork": {"operationId": "DeleteNetwork", "parameters": {"network_id": "$response.body#/id"}},
    "SubmitInference": {"operationId": "SubmitInference", "parameters": {"network_id": "$response.body#/id"}},
    "GetDeployTask": {"operationId": "GetTask", "parameters": {"task_id": "$response.body#/task_id"}},
}
CREATE_EXAMPLE = {
    "name": "inception v3",
    "description": "Trained on 40k more images",
    "metadata": {"author": "me", "project": "Go to mars"},
    "framework": "tensorflow-1.x",
    "preprocessing": {
        "inputs": [
            {
                "tensor_name": "map/TensorArrayStack/TensorArrayGatherV3:0",
                "image": {
                    "dimension_order": "NHWC",
                    "target_size": "299x299",
                    "resize_type": "CROP",
                    "color_channels": "BGR",
                    "pixel_scaling": 2.0,
                    "data_type": "FLOAT32",
                },
            }
        ],
        "batched_output": True,
    },
    "postprocessings": [{"tensors_output": {"tensors": ["softmax:0"]}}],
    "archive_name": "model.zip",
}
SPEC_ID = _path_id("spec_id", "recognition spec")
VERSION_ID = _path_id("version_id", "recognition version")
SPEC_EXAMPLE = {
    "name": "cats and dogs",
    "description": "Which pet is in the picture",
    "metadata": {"project": "pets"},
    "outputs": [
        {
            "labels": {
                "roi": "NONE",
                "exclusive": True,
                "labels": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}],
            }
        }
    ],
}
SPEC_LINKS = {
    name: {"operationId": name, "parameters": {"spec_id": "$response.body#/id"}}
    for name in (
        "GetRecognitionSpec",
        "UpdateRecognitionSpec",
        "DeleteRecognitionSpec",
        "ListRecognitionSpecVersions",
        "SubmitRecognitionSpecInference",
    )
}
VERSION_LINKS = {
    name: {"operationId": name, "parameters": {"version_id": "$response.body#/id"}}
    for name in ("GetRecognitionVersion", "DeleteRecognitionVersion", "SubmitRecognitionVersionInference")
} | {"GetRecognitionSpec": {"operationId": "GetRecognitionSpec", "parameters": {"spec_id": "$response.body#/spec_id"}}}
TASK_LINKS = {"GetInferenceTask": {"operationId": "GetTask", "parameters": {"task_id": "$response.body#/task_id"}}}
PUBLIC_SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "description": "The public spec's slug, e.g. `imagenet-inception-v3`.",
    "schema": {"type": "string"},
}
NETWORK_READ_ONLY = "Read-only fields (id, framework, preprocessing, ...) answer 400 naming the field as immutable."

ENDPOINT_ID = _path_id("endpoint_id", "endpoint")
ENDPOINT_LINKS = {
    name: {"operationId": name, "parameters": {"endpoint_id": "$response.body#/id"}}
    for name in ("GetEndpoint", "UpdateEndpoint", "DeleteEndpoint", "ShutdownEndpoint", "PredictEndpoint")
}
LIST_FILTERS: tuple[dict[str, Any], ...] = (
    {
        "name": "cursor",
        "in": "query",
        "description": "Where a `next` link continues; it wins over `offset` (kept for `previous` links).",
        "schema": {"type": "string", "maxLength": 200},
    },
    {
        "name": "search",
        "in": "query",
        "description": "A part of the name, description or author, any case.",
        "schema": {"type": "string", "maxLength": 200},
    },
    {
        "name": "name",
        "in": "query",
        "description": "A part of the name, any case.",
        "schema": {"type": "string", "maxLength": 200},
    },
    {
        "name": "author",
        "in": "query",
        "description": "A part of the author (the name the creating API key was issued to), any case.",
        "schema": {"type": "string", "maxLength": 200},
    },
    {"name": "status", "in": "query", "description": "Exactly this status.", "schema": {"type": "string"}},
)
LOOKUP_NAME: dict[str, Any] = {
    "name": "name",
    "in": "query",
    "required": True,
    "description": "The exact name, case-sensitive.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
ENDPOINT_TARGET_ERRORS = {
    400: "Invalid fields, a target of no resource of this account, or a name another endpoint has.",
    413: None,
    415: None,
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/v0.7/networks",
        "CreateNetwork",
        "networks",
        "Register a network",
        description=(
            "Either multipart/form-data, the fields with the model files as parts named by their file names "
            "(`saved_model.pb`, `variables.index`, `mean.npy`, ...), each at most 6 MiB; or JSON without "
            "files, whose answer carries `upload`, a presigned POST for one model archive (.zip, .tar.gz) of "
            "up to 5 GiB. Object fields of a form are JSON text (`-F preprocessing='{...}'`) or flattened "
            "Django-REST style (`preprocessing.inputs[0]image.dimension_order=NCHW`). The network is "
            "`pending` until its deploy task (`task_id`) ends."
        ),
        body={"application/json": CreateNetwork, "multipart/form-data": "CreateNetworkForm"},
        body_example=CREATE_EXAMPLE,
        success=Success(201, "The network, pending its conversion.", responses.CreatedNetworkBody, links=NETWORK_LINKS),
        errors={400: None, 413: None, 415: None},
    ),
    Operation(
        "GET",
        "/v0.7/networks",
        "ListNetworks",
        "networks",
        "List or search the account's networks",
        description=(
            "`next` links carry a cursor, so a page costs the same however deep it is; `offset` alone still "
            "pages. `search`, `name` and `author` match parts, any case; `status` is exact."
        ),
        parameters=(*PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of networks, newest last.", responses.NetworkPage),
        errors={400: "A page or filter parameter is out of range, or the cursor is not one a link gave."},
    ),
    Operation(
        "GET",
        "/v0.7/networks/lookup",
        "LookupNetwork",
        "networks",
        "Find the newest network with exactly this name",
        parameters=(LOOKUP_NAME,),
        success=Success(200, "The network.", responses.NetworkBody),
        errors={400: "`name` is missing.", 404: "No network of this account has exactly this name."},
    ),
    Operation(
        "GET",
        "/v0.7/networks/public",
        "ListPublicNetworks",
        "public networks",
        "List the public networks",
        parameters=PAGINATION,
        success=Success(200, "One page of public networks (their ids are slugs).", responses.NetworkPage),
        errors={400: "`offset` or `limit` is out of range."},
    ),
    Operation(
        "GET",
        "/v0.7/networks/public/{slug}",
        "GetPublicNetwork",
        "public networks",
        "Get a public network",
        parameters=(
            {
                "name": "slug",
                "in": "path",
                "required": True,
                "description": "The public network's slug, e.g. `imagenet-inception-v3`.",
                "schema": {"type": "string"},
            },
        ),
        success=Success(200, "The public network.", responses.NetworkBody),
        errors={404: "No public network has this slug."},
    ),
    Operation(
        "GET",
        "/v0.7/networks/{network_id}",
        "GetNetwork",
        "networks",
        "Get a network",
        parameters=(NETWORK_ID,),
        success=Success(200, "The network.", responses.NetworkBody),
        errors={404: None},
    ),
    Operation(
        "PATCH",
        "/v0.7/networks/{network_id}",
        "UpdateNetwork",
        "networks",
        "Rename a network or change its description or metadata",
        description=f"Only `name`, `description` and `metadata` change. {NETWORK_READ_ONLY}",
        parameters=(NETWORK_ID,),
        body={"application/json": UpdateNetwork, "multipart/form-data": "UpdateNetworkForm"},
        body_example={"name": "inception v3, retrained", "metadata": {"author": "me", "epochs": 12}},
        success=Success(200, "The network as changed.", responses.NetworkBody),
        errors={
            400: None,
            404: None,
            409: "The network kept being changed by other requests; retry.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "DELETE",
        "/v0.7/networks/{network_id}",
        "DeleteNetwork",
        "networks",
        "Delete a network, its files and its converted model",
        parameters=(NETWORK_ID,),
        success=Success(204, "Deleted."),
        errors={404: None},
    ),
    Operation(
        "POST",
        "/v0.7/networks/{network_id}/inference",
        "SubmitInference",
        "inference",
        "Queue one inference",
        description=(
            "One entry of `inputs` per network input, in `preprocessing.inputs` order. An image source is an "
            "http(s) URL, base64 bytes (optionally a `data:` URL) or an `s3://` URI under the account's upload "
            "prefix. As multipart/form-data the same fields are flattened and `inputs[0]image.source` is a "
            "file part holding the image bytes; any other Content-Type is a 415. A `polygon` crops to its "
            "bounding box and, with `crop_uniform_background`, whitens the crop outside it. The answer comes at "
            "once; poll the task for the result."
        ),
        parameters=(NETWORK_ID,),
        body={"application/json": InferenceRequest, "multipart/form-data": "InferenceForm"},
        body_example={"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}]},
        success=Success(
            200,
            "The inference task, pending.",
            responses.TaskQueued,
            links={
                "GetInferenceTask": {"operationId": "GetTask", "parameters": {"task_id": "$response.body#/task_id"}}
            },
        ),
        errors={
            400: None,
            404: None,
            409: "The network is not ready: its deploy task is pending, or it failed.",
            413: "An input is over 5 MiB; upload it and send its s3:// URI or an https URL.",
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/tasks",
        "ListTasks",
        "tasks",
        "Get several tasks",
        description="Tasks of other accounts and unknown ids are left out of `results`.",
        parameters=(
            {
                "name": "task_ids",
                "in": "query",
                "required": True,
                "description": f"Task ids, `task_ids=1&task_ids=2` or `task_ids=1,2`; at most {MAX_TASK_IDS}.",
                "style": "form",
                "explode": True,
                "schema": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": LARGEST_ID},
                    "minItems": 1,
                    "maxItems": MAX_TASK_IDS,
                },
            },
            *PAGINATION,
        ),
        success=Success(200, "One page of the tasks asked for, in the order asked.", responses.TaskPage),
        errors={400: "`task_ids` is missing, holds a non-integer or too many ids, or the page is out of range."},
    ),
    Operation(
        "GET",
        "/v0.7/tasks/{task_id}",
        "GetTask",
        "tasks",
        "Get a task",
        parameters=(_path_id("task_id", "task"),),
        success=Success(200, "The task.", responses.TaskBody),
        errors={404: None},
    ),
    Operation(
        "POST",
        "/v0.7/recognition/specs",
        "CreateRecognitionSpec",
        "recognition specs",
        "Create a recognition spec",
        description=(
            "A spec says what a recognition answers: its outputs, each with its labels, `roi` `NONE` for a "
            "classification or `BBOX` for a detection. `outputs` cannot change afterwards; versions bind the "
            "spec to networks."
        ),
        body={"application/json": CreateRecognitionSpec},
        body_example=SPEC_EXAMPLE,
        success=Success(201, "The spec, without a version yet.", responses.RecognitionSpecBody, links=SPEC_LINKS),
        errors={400: None, 413: None, 415: None},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/specs",
        "ListRecognitionSpecs",
        "recognition specs",
        "List or search the account's recognition specs",
        description="`status` is `ready` for a spec with a current version, `pending` for one without.",
        parameters=(*PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of specs, oldest first.", responses.RecognitionSpecPage),
        errors={400: "A page or filter parameter is out of range, or the cursor is not one a link gave."},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/specs/lookup",
        "LookupRecognitionSpec",
        "recognition specs",
        "Find the newest recognition spec with exactly this name",
        parameters=(LOOKUP_NAME,),
        success=Success(200, "The spec.", responses.RecognitionSpecBody),
        errors={400: "`name` is missing.", 404: "No recognition spec of this account has exactly this name."},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/public",
        "ListPublicRecognitionSpecs",
        "recognition specs",
        "List the public recognition specs",
        parameters=PAGINATION,
        success=Success(200, "One page of public specs (their ids are slugs).", responses.RecognitionSpecPage),
        errors={400: "`offset` or `limit` is out of range."},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/public/{slug}",
        "GetPublicRecognitionSpec",
        "recognition specs",
        "Get a public recognition spec",
        parameters=(PUBLIC_SLUG,),
        success=Success(200, "The public spec.", responses.RecognitionSpecBody),
        errors={404: "No public recognition spec has this slug."},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/specs/{spec_id}",
        "GetRecognitionSpec",
        "recognition specs",
        "Get a recognition spec",
        parameters=(SPEC_ID,),
        success=Success(200, "The spec.", responses.RecognitionSpecBody),
        errors={404: None},
    ),
    Operation(
        "PATCH",
        "/v0.7/recognition/specs/{spec_id}",
        "UpdateRecognitionSpec",
        "recognition specs",
        "Rename a recognition spec or switch its current version",
        description=(
            "Only `name`, `description`, `metadata` and `current_version_id` change; `outputs` and the other "
            "read-only fields answer 400 naming the field as immutable. `current_version_id` names a version of "
            "this spec, or null for none: the spec's inference then runs that version."
        ),
        parameters=(SPEC_ID,),
        body={"application/json": UpdateRecognitionSpec},
        body_example={"name": "pets", "current_version_id": 1},
        success=Success(200, "The spec as changed.", responses.RecognitionSpecBody),
        errors={
            400: None,
            404: None,
            409: "The spec kept being changed by other requests; retry.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "DELETE",
        "/v0.7/recognition/specs/{spec_id}",
        "DeleteRecognitionSpec",
        "recognition specs",
        "Delete a recognition spec and its versions",
        parameters=(SPEC_ID,),
        success=Success(204, "Deleted."),
        errors={404: None},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/specs/{spec_id}/versions",
        "ListRecognitionSpecVersions",
        "recognition versions",
        "List a recognition spec's versions",
        parameters=(SPEC_ID, *PAGINATION),
        success=Success(200, "One page of the spec's versions, oldest first.", responses.RecognitionVersionPage),
        errors={400: "`offset` or `limit` is out of range.", 404: None},
    ),
    Operation(
        "POST",
        "/v0.7/recognition/versions",
        "CreateRecognitionVersion",
        "recognition versions",
        "Bind a recognition spec to a ready network",
        description=(
            "`post_processings` has one entry per spec output, in its order: `classification` for an output "
            "whose `roi` is `NONE`, `detection` for `BBOX`, each with one threshold per label of the output. "
            "A spec's first version becomes its current one. Versions do not change; create another."
        ),
        body={"application/json": CreateRecognitionVersion},
        body_example={
            "spec_id": 1,
            "network_id": 1,
            "post_processings": [{"classification": {"output_tensor": "softmax", "thresholds": [0.5, 0.5]}}],
        },
        success=Success(201, "The version.", responses.RecognitionVersionBody, links=VERSION_LINKS),
        errors={
            400: None,
            409: "The network is not ready: its deploy task is pending, or it failed.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/recognition/versions",
        "ListRecognitionVersions",
        "recognition versions",
        "List the account's recognition versions",
        parameters=PAGINATION,
        success=Success(200, "One page of versions, oldest first.", responses.RecognitionVersionPage),
        errors={400: "`offset` or `limit` is out of range."},
    ),
    Operation(
        "GET",
        "/v0.7/recognition/versions/{version_id}",
        "GetRecognitionVersion",
        "recognition versions",
        "Get a recognition version",
        parameters=(VERSION_ID,),
        success=Success(200, "The version.", responses.RecognitionVersionBody),
        errors={404: None},
    ),
    Operation(
        "DELETE",
        "/v0.7/recognition/versions/{version_id}",
        "DeleteRecognitionVersion",
        "recognition versions",
        "Delete a recognition version",
        description="Deleting a spec's current version leaves the spec without one until a PATCH names another.",
        parameters=(VERSION_ID,),
        success=Success(204, "Deleted."),
        errors={404: None},
    ),
    Operation(
        "POST",
        "/v0.7/recognition/versions/{version_id}/inference",
        "SubmitRecognitionVersionInference",
        "recognition inference",
        "Queue one inference through a recognition version",
        description=(
            "The request of `POST /v0.7/networks/{network_id}/inference`, run on the version's network; the "
            "task's `data.outputs` holds one `{labels: {predicted, discarded}}` per spec output: labels at or "
            "above their threshold, best first (detections with their box in original image pixels and a "
            "`region_id`), the others only with `show_discarded`, at most `max_predictions` in all. `tensors` "
            "holds the tensors named by `output_tensors`, if any."
        ),
        parameters=(VERSION_ID,),
        body={"application/json": InferenceRequest, "multipart/form-data": "InferenceForm"},
        body_example={"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}], "show_discarded": True},
        success=Success(200, "The inference task, pending.", responses.TaskQueued, links=TASK_LINKS),
        errors={
            400: None,
            404: None,
            409: "The version's network is not ready.",
            413: "An input is over 5 MiB; upload it and send its s3:// URI or an https URL.",
            415: None,
        },
    ),
    Operation(
        "POST",
        "/v0.7/recognition/specs/{spec_id}/inference",
        "SubmitRecognitionSpecInference",
        "recognition inference",
        "Queue one inference through a recognition spec's current version",
        description=(
            "As through a version, on the spec's `current_version_id`: a name that keeps working while the "
            "version behind it changes (one PATCH of the spec switches it)."
        ),
        parameters=(SPEC_ID,),
        body={"application/json": InferenceRequest, "multipart/form-data": "InferenceForm"},
        body_example={"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}], "max_predictions": 5},
        success=Success(200, "The inference task, pending.", responses.TaskQueued, links=TASK_LINKS),
        errors={
            400: None,
            404: None,
            409: "The spec has no current version, or its network is not ready.",
            413: "An input is over 5 MiB; upload it and send its s3:// URI or an https URL.",
            415: None,
        },
    ),
    Operation(
        "POST",
        "/v0.7/endpoints",
        "CreateEndpoint",
        "endpoints",
        "Create an endpoint",
        description=(
            "A named handle (unique in the account) on exactly one target: `network_id` (answers tensors), "
            "`recognition_version_id`, or `recognition_spec_id` (whichever version is current answers). "
            "`replicas` workers are kept warm for it while it runs; `gpu_required` picks the GPU worker service. "
            "`canary` sends `weight` of the predictions to a second target."
        ),
        body={"application/json": CreateEndpoint},
        body_example={
            "name": "pets",
            "recognition_spec_id": 1,
            "replicas": 1,
            "canary": {"recognition_version_id": 4, "weight": 0.05},
        },
        success=Success(201, "The endpoint, running.", responses.EndpointBody, links=ENDPOINT_LINKS),
        errors=ENDPOINT_TARGET_ERRORS,
    ),
    Operation(
        "GET",
        "/v0.7/endpoints",
        "ListEndpoints",
        "endpoints",
        "List or search the account's endpoints",
        parameters=(*PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of endpoints, oldest first.", responses.EndpointPage),
        errors={400: "A page or filter parameter is out of range, or the cursor is not one a link gave."},
    ),
    Operation(
        "GET",
        "/v0.7/endpoints/lookup",
        "LookupEndpoint",
        "endpoints",
        "Find the endpoint with exactly this name",
        parameters=(LOOKUP_NAME,),
        success=Success(200, "The endpoint.", responses.EndpointBody),
        errors={400: "`name` is missing.", 404: "No endpoint of this account has exactly this name."},
    ),
    Operation(
        "GET",
        "/v0.7/endpoints/{endpoint_id}",
        "GetEndpoint",
        "endpoints",
        "Get an endpoint",
        parameters=(ENDPOINT_ID,),
        success=Success(200, "The endpoint.", responses.EndpointBody),
        errors={404: None},
    ),
    Operation(
        "PATCH",
        "/v0.7/endpoints/{endpoint_id}",
        "UpdateEndpoint",
        "endpoints",
        "Change an endpoint: its name, target, canary, replicas or device",
        description=(
            "Naming a target replaces the current one (the PATCH that makes a canary current: "
            '`{"recognition_version_id": 4, "canary": null}`). `id`, `author`, `status` and the dates are '
            "read-only (400 naming the field)."
        ),
        parameters=(ENDPOINT_ID,),
        body={"application/json": UpdateEndpoint},
        body_example={"name": "pets v2", "replicas": 2},
        success=Success(200, "The endpoint as changed.", responses.EndpointBody),
        errors={**ENDPOINT_TARGET_ERRORS, 404: None, 409: "The endpoint kept being changed by other requests."},
    ),
    Operation(
        "DELETE",
        "/v0.7/endpoints/{endpoint_id}",
        "DeleteEndpoint",
        "endpoints",
        "Delete an endpoint (its name is free again)",
        parameters=(ENDPOINT_ID,),
        success=Success(204, "Deleted."),
        errors={404: None},
    ),
    Operation(
        "POST",
        "/v0.7/endpoints/{endpoint_id}/shutdown",
        "ShutdownEndpoint",
        "endpoints",
        "Shut an endpoint down",
        description="Its predictions answer 409 from now on and the workers it kept warm are released.",
        parameters=(ENDPOINT_ID,),
        success=Success(200, "The endpoint, `shutdown`.", responses.EndpointBody),
        errors={404: None, 409: "The endpoint kept being changed by other requests."},
    ),
    Operation(
        "POST",
        "/v0.7/endpoints/{endpoint_id}/predict",
        "PredictEndpoint",
        "endpoints",
        "Predict: results in the same response when they are ready in time",
        description=(
            "SBrain's `features` (one sample per feature) or the v0.7 `inputs` (one sample), with the v0.7 "
            "inference options. Each sample is one task on the endpoint's target, or its canary drawn by weight. "
            "When every task ends within the budget (10 s by default; `?wait=` seconds asks less) the answer is "
            "200 with the results; otherwise 202 with the same body, the tasks pending: poll their ids."
        ),
        parameters=(
            ENDPOINT_ID,
            {
                "name": "wait",
                "in": "query",
                "description": "Seconds to wait for the results at most (the predict budget caps it); 0 answers 202.",
                "schema": {"type": "number", "minimum": 0, "maximum": 60},
            },
        ),
        body={"application/json": PredictRequest, "multipart/form-data": "InferenceForm"},
        body_example={"features": ["/9j/4AAQSkZJRg..."], "max_predictions": 3},
        success=Success(200, "Every task ended: the results.", responses.PredictionBody),
        also=(Success(202, "Some tasks had not ended by the wait: poll `task_ids`.", responses.PredictionBody),),
        errors={
            400: None,
            404: None,
            409: "The endpoint is shut down, its spec has no current version, or its network is not ready.",
            413: "An input is over 5 MiB; upload it and send its s3:// URI or an https URL.",
            415: None,
        },
    ),
    Operation(
        "POST",
        "/v0.7/jobs",
        "CreateJob",
        "jobs",
        "Create a batch inference job",
        description=(
            "Every item (one image) runs through the target (exactly one of `network_id`, `recognition_version_id`, "
            "`recognition_spec_id` through its current version, or `endpoint_id` through its target) on a queue of "
            "its own, which the workers serve after online inference. `inputs` is one of `urls` (http(s) URLs, "
            "fetched under the worker's rules), `prefix` (an s3:// prefix inside your upload prefix: every object "
            'under it, in key order) or `archive` (`{"name": "shelves.zip"}`: the job answers `pending` with '
            "`upload`, a presigned POST for one .zip, .tar.gz or .tgz of images; its arrival makes each image an "
            "item, in member path order, or ends the job in `error` with a sentence when the archive is refused). "
            "Through an endpoint with a traffic split, floor(N × weight) of the N items run on its canary, and "
            "each results line names the target that served it. The job answers its progress; once every item "
            "ended, `results_url` downloads the results as JSON Lines."
        ),
        body={"application/json": JobRequest},
        body_example={
            "name": "shelf photos",
            "network_id": 1,
            "inputs": {"prefix": "s3://tensorgate-models/uploads/dev/shelves/"},
        },
        success=Success(201, "The job, running (or pending its archive, with `upload`).", JobBody),
        errors={
            400: None,
            409: "The network is not ready, the spec has no current version, or the endpoint is shut down.",
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/jobs",
        "ListJobs",
        "jobs",
        "List or search the account's jobs",
        parameters=(*PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of jobs, oldest first, each with its progress.", JobPage),
        errors={400: "A page or filter parameter is out of range, or the cursor is not one a link gave."},
    ),
    Operation(
        "GET",
        "/v0.7/jobs/lookup",
        "LookupJob",
        "jobs",
        "Find the newest job with exactly this name",
        parameters=(LOOKUP_NAME,),
        success=Success(200, "The job.", JobBody),
        errors={400: "`name` is missing.", 404: "No job of this account has exactly this name."},
    ),
    Operation(
        "GET",
        "/v0.7/jobs/{job_id}",
        "GetJob",
        "jobs",
        "Get a job: its progress, errors and results",
        parameters=(_path_id("job_id", "job"),),
        success=Success(200, "The job.", JobBody),
        errors={404: None},
    ),
    Operation(
        "POST",
        "/v0.7/jobs/{job_id}/cancel",
        "CancelJob",
        "jobs",
        "Cancel a job",
        description="Items that had not started end as cancelled; items running finish. The results list them all.",
        parameters=(_path_id("job_id", "job"),),
        success=Success(200, "The job, `cancelled`.", JobBody),
        errors={404: None, 409: "The job already ended."},
    ),
    Operation(
        "GET",
        "/v0.7/openapi.json",
        "GetOpenApiDocument",
        "documentation",
        "This document",
        public=True,
        errors={429: "Too many requests to the API; retry after a pause."},
        success=Success(200, "The OpenAPI 3.1 document.", content={"application/json": {"schema": {"type": "object"}}}),
    ),
    Operation(
        "GET",
        "/v0.7/docs",
        "GetDocsPage",
        "documentation",
        "This document as a web page",
        public=True,
        errors={429: "Too many requests to the API; retry after a pause."},
        success=Success(
            200, "An HTML page rendering this document.", content={"text/html": {"schema": {"type": "string"}}}
        ),
    ),
)


# The datasets' operations live in their own module, which reads the helpers above.
from tensorgate.openapi_datasets import DATASET_OPERATIONS  # noqa: E402

OPERATIONS += DATASET_OPERATIONS


def _json_form(model_schema: dict[str, Any], title: str, description: str, files: bool) -> dict[str, Any]:
    """A JSON body model as a form: the same fields, objects and arrays as JSON text parts, plus file parts."""
    form = {
        "type": "object",
        "title": title,
        "description": description,
        "properties": {name: value for name, value in model_schema["properties"].items() if name != "archive_name"},
        "additionalProperties": (
            {"type": "string", "format": "binary", "description": "A model file, named by its file name."}
            if files
            else {"type": "string", "description": "A flattened key of an object field, e.g. `metadata.author`."}
        ),
    }
    if not files:
        # Without files, a part is a field or a flattened key of an object field (`metadata.author`).
        names = "|".join(form["properties"])
        form["propertyNames"] = {"pattern": rf"^({names})$|^metadata[.\[]"}
    if model_schema.get("required"):
        form["required"] = list(model_schema["required"])
    return form


def _inference_form() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "InferenceForm",
        "description": (
            "The JSON body flattened: `inputs[0]image.source` (a file part with the image bytes, or text as in "
            "JSON), `inputs[1]image.source` for a second input, `inputs[0]image.bbox.xmin`, "
            "`inputs[0]image.polygon[0]x`, `inputs[0]image.crop_uniform_background` (`True`/`False`), "
            "`output_tensors[0]`, `bounding_box_threshold`, `show_discarded`, `max_predictions`, ..."
        ),
        "properties": {
            "inputs[0]image.source": {"type": "string", "format": "binary", "description": "The first input's image."}
        },
        "required": ["inputs[0]image.source"],
        "additionalProperties": {"type": "string"},
        "propertyNames": {
            "pattern": r"^inputs\[\d+\]|^output_tensors\[\d+\]$"
            r"|^(bounding_box_threshold|iou_threshold|max_objects|show_discarded|max_predictions)$"
        },
    }


def _form_encoding(form: dict[str, Any]) -> dict[str, Any]:
    return {name: {"contentType": "application/json"} for name in sorted(JSON_FIELDS & form["properties"].keys())}


@cache
def _components() -> tuple[dict[str, Any], dict[str, Any]]:
    """Component schemas of every model the operations name, and the `$ref` of each model."""
    models: list[type[BaseModel]] = [responses.ErrorBody]
    for operation in OPERATIONS:
        models += [model for model in operation.body.values() if not isinstance(model, str)]
        if operation.success.model is not None:
            models.append(operation.success.model)
    unique = list(dict.fromkeys(models))
    refs, definitions = models_json_schema(
        [(model, "validation") for model in unique], ref_template="#/components/schemas/{model}"
    )
    schemas = definitions.get("$defs", {})
    schemas["CreateNetworkForm"] = _json_form(
        schemas["CreateNetwork"],
        "CreateNetworkForm",
        "CreateNetwork as a form, plus one file part per model file. Object fields are JSON text.",
        files=True,
    )
    schemas["UpdateNetworkForm"] = _json_form(
        schemas["UpdateNetwork"], "UpdateNetworkForm", "UpdateNetwork as a form (text fields only).", files=False
    )
    schemas["InferenceForm"] = _inference_form()
    return schemas, {model.__name__: refs[(model, "validation")] for model in unique}


def _schema_of(model: type[BaseModel] | str, refs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(model, str):
        return {"$ref": f"#/components/schemas/{model}"}
    return dict(refs[model.__name__])


def _operation(operation: Operation, schemas: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.success.description}
    if operation.success.model is not None:
        success["content"] = {"application/json": {"schema": _schema_of(operation.success.model, refs)}}
    elif operation.success.content is not None:
        success["content"] = operation.success.content
    if operation.success.links:
        success["links"] = operation.success.links
    answers: dict[str, Any] = {str(operation.success.status): success}
    for other in operation.also:
        assert other.model is not None
        answers[str(other.status)] = {
            "description": other.description,
            "content": {"application/json": {"schema": _schema_of(other.model, refs)}},
        }
    statuses = dict(operation.errors)
    if not operation.public:
        statuses |= {status: statuses.get(status) for status in AUTHENTICATED_ERRORS}
    for status in sorted(statuses):
        answers[str(status)] = {
            "description": statuses[status] or ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _schema_of(responses.ErrorBody, refs)}},
        }
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "tags": [operation.tag],
        "summary": operation.summary,
    }
    if operation.description:
        document["description"] = operation.description
    if operation.parameters:
        document["parameters"] = copy.deepcopy(list(operation.parameters))
    if operation.body:
        content: dict[str, Any] = {}
        for media_type, model in operation.body.items():
            media: dict[str, Any] = {"schema": _schema_of(model, refs)}
            if media_type == "multipart/form-data" and isinstance(model, str) and model != "InferenceForm":
                media["encoding"] = _form_encoding(schemas[model])
            if media_type == "application/json" and operation.body_example is not None:
                media["example"] = operation.body_example
            content[media_type] = media
        document["requestBody"] = {"required": True, "content": content}
    document["responses"] = answers
    if operation.public:
        document["security"] = []
    return document


@cache
def _document() -> dict[str, Any]:
    schemas, refs = _components()
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, schemas, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Tensorgate",
            "version": API_VERSION,
            "description": (
                "Serverless model hosting, wire-compatible with the Deepomatic API v0.7 networks and recognition "
                "resources: register a network, let it convert to ONNX, queue inferences and poll their tasks; "
                "describe what a recognition answers (a spec) and bind it to networks (versions) for labelled "
                "predictions under a name that outlives the model behind it. Every "
                'path also answers with a trailing slash. Errors are `{"error": "<one sentence>", '
                '"details": [...]}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-KEY",
                    "description": "The account's API key.",
                }
            },
        },
        "security": [{SECURITY_SCHEME: []}],
        "tags": [
            {"name": "networks", "description": "The account's networks."},
            {"name": "public networks", "description": "The public catalogue, readable by every account."},
            {"name": "inference", "description": "Queued inference on a ready network."},
            {"name": "tasks", "description": "Deploy and inference tasks."},
            {"name": "recognition specs", "description": "What a recognition answers: outputs and labels."},
            {"name": "recognition versions", "description": "A spec bound to a network and how to read its tensors."},
            {"name": "recognition inference", "description": "Labelled predictions through a spec or a version."},
            {"name": "endpoints", "description": "Named deployments with a synchronous predict."},
            {"name": "jobs", "description": "Batch inference over many images, with progress and results."},
            {"name": "datasets", "description": "Labelled images, their versions and splits."},
            {"name": "documentation", "description": "This document; no key needed."},
        ],
    }


def document(server_url: str | None = None) -> dict[str, Any]:
    """The document, addressed to `server_url` (the API's root, before `/v0.7`) when given."""
    built = copy.deepcopy(_document())
    built["servers"] = [{"url": server_url or "/"}]
    return built
