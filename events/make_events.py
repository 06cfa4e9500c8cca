"""Writes the API events of `events/` with the local gateway's own event builder (see events/README.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

EVENTS = Path(__file__).resolve().parent
DEV_KEY = "tg_development_key_0123456789"
UNKNOWN_KEY = "tg_unknown_key_000000000000"
HOST = "127.0.0.1:3000"
BOUNDARY = "tensorgate-event-boundary"
# Fixed so that regenerating the files changes nothing unless a request changes.
REQUEST_TIME_EPOCH = 1_767_225_600_000
PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "data",
            "image": {
                "dimension_order": "NCHW",
                "target_size": "224x224",
                "resize_type": "SQUASH",
                "mean_file": "mean.npy",
                "color_channels": "BGR",
                "pixel_scaling": 255.0,
                "data_type": "FLOAT32",
            },
        }
    ],
    "batched_output": True,
}


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> bytes:
    """The seed's cURL form: text fields, then one part per file named by its file name."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts += [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files.items()
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


# events/<function folder>/<NN_case>.json → the request; NN orders the cases (create before get).
REQUESTS: dict[str, dict[str, Any]] = {
    "networks_api/01_create_multipart.json": {
        "method": "POST",
        "path": "/v0.7/networks/",
        "content_type": f"multipart/form-data; boundary={BOUNDARY}",
        "body": multipart(
            {
                "name": "my new network",
                "description": "trained with more images",
                "metadata": json.dumps({"author": "me", "project": "Go to mars"}),
                "framework": "tensorflow-1.x",
                "preprocessing": json.dumps(PREPROCESSING),
                "postprocessings": json.dumps([{"tensors_output": {"tensors": ["prob"]}}]),
            },
            {
                "saved_model.pb": b"a SavedModel graph",
                "variables.index": b"variables index",
                "variables.data-00000-of-00001": b"variables data",
                "mean.npy": b"\x93NUMPY a mean file",
            },
        ),
    },
    "networks_api/02_create_json.json": {
        "method": "POST",
        "path": "/v0.7/networks/",
        "content_type": "application/json",
        "body": json.dumps({"name": "large network", "archive_name": "model.tar.gz"}).encode(),
    },
    "networks_api/03_list.json": {"method": "GET", "path": "/v0.7/networks/", "query": {"offset": "0", "limit": "1"}},
    "networks_api/04_list_public.json": {"method": "GET", "path": "/v0.7/networks/public/"},
    "networks_api/05_get.json": {"method": "GET", "path": "/v0.7/networks/1/"},
    "networks_api/06_patch.json": {
        "method": "PATCH",
        "path": "/v0.7/networks/1/",
        "content_type": "application/json",
        "body": json.dumps({"name": "new name", "description": "new description"}).encode(),
    },
    "networks_api/07_patch_immutable.json": {
        "method": "PATCH",
        "path": "/v0.7/networks/1/",
        "content_type": "application/json",
        "body": json.dumps({"preprocessing": PREPROCESSING}).encode(),
    },
    "networks_api/08_get_unknown.json": {"method": "GET", "path": "/v0.7/networks/424242/"},
    "networks_api/09_delete.json": {"method": "DELETE", "path": "/v0.7/networks/1/"},
    "tasks_api/01_get.json": {"method": "GET", "path": "/v0.7/tasks/1/"},
    "tasks_api/02_list_by_ids.json": {"method": "GET", "path": "/v0.7/tasks/", "query": {"task_ids": ["1", "2"]}},
    "tasks_api/03_unknown_key.json": {"method": "GET", "path": "/v0.7/tasks/1/", "api_key": UNKNOWN_KEY},
    "docs_api/01_openapi_document.json": {"method": "GET", "path": "/v0.7/openapi.json"},
    "recognition_api/01_create_spec.json": {
        "method": "POST",
        "path": "/v0.7/recognition/specs/",
        "content_type": "application/json",
        "body": json.dumps(
            {
                "name": "cats and dogs",
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
        ).encode(),
    },
    "recognition_api/02_list_specs.json": {"method": "GET", "path": "/v0.7/recognition/specs/"},
    "recognition_api/03_list_public.json": {"method": "GET", "path": "/v0.7/recognition/public/"},
    "recognition_api/04_get_spec.json": {"method": "GET", "path": "/v0.7/recognition/specs/1/"},
    "recognition_api/05_patch_spec.json": {
        "method": "PATCH",
        "path": "/v0.7/recognition/specs/1/",
        "content_type": "application/json",
        "body": json.dumps({"name": "pets", "metadata": {"project": "pets"}}).encode(),
    },
    "recognition_api/06_patch_outputs_immutable.json": {
        "method": "PATCH",
        "path": "/v0.7/recognition/specs/1/",
        "content_type": "application/json",
        "body": json.dumps({"outputs": []}).encode(),
    },
    "recognition_api/07_create_version_network_pending.json": {
        "method": "POST",
        "path": "/v0.7/recognition/versions/",
        "content_type": "application/json",
        "body": json.dumps(
            {
                "spec_id": 1,
                "network_id": 1,
                "post_processings": [{"classification": {"output_tensor": "prob", "thresholds": [0.5, 0.5]}}],
            }
        ).encode(),
    },
    "recognition_api/08_list_versions.json": {"method": "GET", "path": "/v0.7/recognition/versions/"},
    "recognition_api/09_list_spec_versions.json": {"method": "GET", "path": "/v0.7/recognition/specs/1/versions/"},
    "recognition_api/10_get_version_unknown.json": {"method": "GET", "path": "/v0.7/recognition/versions/424242/"},
    "recognition_api/11_spec_inference_no_current_version.json": {
        "method": "POST",
        "path": "/v0.7/recognition/specs/1/inference",
        "content_type": "application/json",
        "body": json.dumps({"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}]}).encode(),
    },
    "recognition_api/12_version_inference_unknown.json": {
        "method": "POST",
        "path": "/v0.7/recognition/versions/424242/inference",
        "content_type": "application/json",
        "body": json.dumps({"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}]}).encode(),
    },
    "recognition_api/13_delete_spec.json": {"method": "DELETE", "path": "/v0.7/recognition/specs/1/"},
    "endpoints_api/01_create.json": {
        "method": "POST",
        "path": "/v0.7/endpoints/",
        "content_type": "application/json",
        "body": json.dumps({"name": "pets", "description": "Pets in photos", "network_id": 1, "replicas": 1}).encode(),
    },
    "endpoints_api/02_create_name_taken.json": {
        "method": "POST",
        "path": "/v0.7/endpoints/",
        "content_type": "application/json",
        "body": json.dumps({"name": "pets", "network_id": 1}).encode(),
    },
    "endpoints_api/03_list_search.json": {"method": "GET", "path": "/v0.7/endpoints/", "query": {"search": "PET"}},
    "endpoints_api/04_lookup.json": {"method": "GET", "path": "/v0.7/endpoints/lookup", "query": {"name": "pets"}},
    "endpoints_api/05_get.json": {"method": "GET", "path": "/v0.7/endpoints/1/"},
    "endpoints_api/06_patch.json": {
        "method": "PATCH",
        "path": "/v0.7/endpoints/1/",
        "content_type": "application/json",
        "body": json.dumps({"replicas": 2, "gpu_required": True}).encode(),
    },
    "endpoints_api/07_predict_network_pending.json": {
        "method": "POST",
        "path": "/v0.7/endpoints/1/predict",
        "content_type": "application/json",
        "body": json.dumps({"features": ["https://example.com/cat.jpg"]}).encode(),
    },
    "endpoints_api/08_shutdown.json": {"method": "POST", "path": "/v0.7/endpoints/1/shutdown"},
    "endpoints_api/09_predict_shut_down.json": {
        "method": "POST",
        "path": "/v0.7/endpoints/1/predict",
        "content_type": "application/json",
        "body": json.dumps({"features": ["https://example.com/cat.jpg"]}).encode(),
    },
    "endpoints_api/10_delete.json": {"method": "DELETE", "path": "/v0.7/endpoints/1/"},
    "datasets_api/01_create.json": {
        "method": "POST",
        "path": "/v0.7/datasets/",
        "content_type": "application/json",
        "body": json.dumps({"name": "pets", "description": "Cats and dogs", "archive_name": "pets.zip"}).encode(),
    },
    "datasets_api/02_create_name_taken.json": {
        "method": "POST",
        "path": "/v0.7/datasets/",
        "content_type": "application/json",
        "body": json.dumps({"name": "pets"}).encode(),
    },
    "datasets_api/03_list_search.json": {"method": "GET", "path": "/v0.7/datasets/", "query": {"search": "CATS"}},
    "datasets_api/04_lookup.json": {"method": "GET", "path": "/v0.7/datasets/lookup", "query": {"name": "pets"}},
    "datasets_api/05_get.json": {"method": "GET", "path": "/v0.7/datasets/1/"},
    "datasets_api/06_retry_while_pending.json": {
        "method": "POST",
        "path": "/v0.7/datasets/1/retry",
        "content_type": "application/json",
        "body": json.dumps({"labels_name": "labels.csv"}).encode(),
    },
    "datasets_api/07_list_versions.json": {"method": "GET", "path": "/v0.7/datasets/1/versions"},
    "datasets_api/08_get_version.json": {"method": "GET", "path": "/v0.7/datasets/1/versions/v1"},
    "datasets_api/09_items_not_ready.json": {"method": "GET", "path": "/v0.7/datasets/1/versions/v1/items"},
    "datasets_api/10_create_split_version_not_ready.json": {
        "method": "POST",
        "path": "/v0.7/datasets/1/splits",
        "content_type": "application/json",
        "body": json.dumps(
            {"name": "holdout", "parts": [{"name": "train", "percentage": 80}, {"name": "test", "percentage": 20}]}
        ).encode(),
    },
    "datasets_api/11_lookup_split_unknown.json": {
        "method": "GET",
        "path": "/v0.7/datasets/splits/lookup",
        "query": {"dataset": "pets", "version": "v1", "name": "holdout"},
    },
    "datasets_api/12_delete.json": {"method": "DELETE", "path": "/v0.7/datasets/1/"},
    "datasets_api/13_evaluation_of_a_deleted_dataset.json": {
        "method": "POST",
        "path": "/v0.7/datasets/1/splits/1/evaluations",
        "content_type": "application/json",
        "body": json.dumps({"network_id": 1, "part": "test"}).encode(),
    },
    "datasets_api/14_evaluation_metrics_unknown.json": {
        "method": "GET",
        "path": "/v0.7/datasets/1/splits/1/evaluations/1/metrics",
    },
    "jobs_api/01_create_network_pending.json": {
        "method": "POST",
        "path": "/v0.7/jobs/",
        "content_type": "application/json",
        "body": json.dumps(
            {"name": "shelves", "network_id": 1, "inputs": {"urls": ["https://example.com/shelf-1.jpg"]}}
        ).encode(),
    },
    "jobs_api/02_create_unknown_network.json": {
        "method": "POST",
        "path": "/v0.7/jobs/",
        "content_type": "application/json",
        "body": json.dumps(
            {"name": "shelves", "network_id": 99, "inputs": {"urls": ["https://example.com/shelf-1.jpg"]}}
        ).encode(),
    },
    "jobs_api/03_get_unknown.json": {"method": "GET", "path": "/v0.7/jobs/99/"},
    "jobs_api/04_cancel_unknown.json": {"method": "POST", "path": "/v0.7/jobs/99/cancel"},
    "jobs_api/05_unknown_key.json": {"method": "GET", "path": "/v0.7/jobs/1/", "api_key": UNKNOWN_KEY},
    "jobs_api/06_list_search.json": {"method": "GET", "path": "/v0.7/jobs/", "query": {"search": "shelf"}},
    "jobs_api/07_lookup_unknown.json": {"method": "GET", "path": "/v0.7/jobs/lookup", "query": {"name": "shelves"}},
    "jobs_api/08_create_archive_network_pending.json": {
        "method": "POST",
        "path": "/v0.7/jobs/",
        "content_type": "application/json",
        "body": json.dumps({"name": "aisles", "network_id": 1, "inputs": {"archive": {"name": "aisles.zip"}}}).encode(),
    },
    "datasets_api/15_cancel_extraction_of_a_deleted_dataset.json": {
        "method": "POST",
        "path": "/v0.7/datasets/1/cancel",
    },
    "datasets_api/16_cancel_evaluation_unknown.json": {
        "method": "POST",
        "path": "/v0.7/datasets/1/splits/1/evaluations/1/cancel",
    },
}


def build_event(gateway: Any, routes: list[Any], spec: dict[str, Any], request_id: str) -> dict[str, Any]:
    headers = {"Host": HOST, "X-API-KEY": spec.get("api_key", DEV_KEY), "User-Agent": "sam-local-event"}
    builder = EnvironBuilder(
        path=spec["path"],
        method=spec["method"],
        query_string=spec.get("query"),
        headers=headers,
        data=spec.get("body"),
        content_type=spec.get("content_type"),
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    request = Request(builder.get_environ())
    for route in routes:
        found = route.pattern().match(request.path)
        if found and route.method == request.method:
            break
    else:
        raise SystemExit(f"no route in template.yaml for {request.method} {request.path}")
    event: dict[str, Any] = gateway.event(request, route, found.groupdict(), spec.get("body") or b"")
    event["requestContext"].update(
        requestId=request_id, extendedRequestId=request_id, requestTimeEpoch=REQUEST_TIME_EPOCH
    )
    return event


def main() -> int:
    from tensorgate_local.gateway import Gateway
    from tensorgate_local.lambdas import LocalFunctions
    from tensorgate_local.template import Template

    template = Template()
    gateway = Gateway(template, LocalFunctions({}))
    for number, (name, spec) in enumerate(REQUESTS.items(), start=1):
        path = EVENTS / name
        path.parent.mkdir(exist_ok=True)
        event = build_event(gateway, template.routes(), spec, f"00000000-0000-4000-8000-{number:012d}")
        path.write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {path.relative_to(EVENTS.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
