"""Every file under events/ replayed through the handler of its folder, under moto: the status each must get."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

EVENTS = Path(__file__).resolve().parents[2] / "events"

# events/<folder>/<case>.json → the status code its handler must answer. Every file needs a line
# here and every line a file; a folder's files replay in sorted order on one fresh stack.
EXPECTED_STATUS: dict[str, int] = {
    "networks_api/01_create_multipart.json": 201,
    "networks_api/02_create_json.json": 201,
    "networks_api/03_list.json": 200,
    "networks_api/04_list_public.json": 200,
    "networks_api/05_get.json": 200,
    "networks_api/06_patch.json": 200,
    "networks_api/07_patch_immutable.json": 400,
    "networks_api/08_get_unknown.json": 404,
    "networks_api/09_delete.json": 204,
    "tasks_api/01_get.json": 200,
    "tasks_api/02_list_by_ids.json": 200,
    "tasks_api/03_unknown_key.json": 401,
    "docs_api/01_openapi_document.json": 200,
    "recognition_api/01_create_spec.json": 201,
    "recognition_api/02_list_specs.json": 200,
    "recognition_api/03_list_public.json": 200,
    "recognition_api/04_get_spec.json": 200,
    "recognition_api/05_patch_spec.json": 200,
    "recognition_api/06_patch_outputs_immutable.json": 400,
    "recognition_api/07_create_version_network_pending.json": 409,
    "recognition_api/08_list_versions.json": 200,
    "recognition_api/09_list_spec_versions.json": 200,
    "recognition_api/10_get_version_unknown.json": 404,
    "recognition_api/11_spec_inference_no_current_version.json": 409,
    "recognition_api/12_version_inference_unknown.json": 404,
    "recognition_api/13_delete_spec.json": 204,
    "endpoints_api/01_create.json": 201,
    "endpoints_api/02_create_name_taken.json": 400,
    "endpoints_api/03_list_search.json": 200,
    "endpoints_api/04_lookup.json": 200,
    "endpoints_api/05_get.json": 200,
    "endpoints_api/06_patch.json": 200,
    "endpoints_api/07_predict_network_pending.json": 409,
    "endpoints_api/08_shutdown.json": 200,
    "endpoints_api/09_predict_shut_down.json": 409,
    "endpoints_api/10_delete.json": 204,
    "datasets_api/01_create.json": 201,
    "datasets_api/02_create_name_taken.json": 400,
    "jobs_api/01_create_network_pending.json": 409,
    "jobs_api/02_create_unknown_network.json": 400,
    "jobs_api/03_get_unknown.json": 404,
    "jobs_api/04_cancel_unknown.json": 404,
    "jobs_api/05_unknown_key.json": 401,
    "jobs_api/06_list_search.json": 200,
    "jobs_api/07_lookup_unknown.json": 404,
    "jobs_api/08_create_archive_network_pending.json": 409,
    "datasets_api/03_list_search.json": 200,
    "datasets_api/04_lookup.json": 200,
    "datasets_api/05_get.json": 200,
    "datasets_api/06_retry_while_pending.json": 409,
    "datasets_api/07_list_versions.json": 200,
    "datasets_api/08_get_version.json": 200,
    "datasets_api/09_items_not_ready.json": 409,
    "datasets_api/10_create_split_version_not_ready.json": 409,
    "datasets_api/11_lookup_split_unknown.json": 404,
    "datasets_api/12_delete.json": 204,
    "datasets_api/13_evaluation_of_a_deleted_dataset.json": 404,
    "datasets_api/14_evaluation_metrics_unknown.json": 404,
    "datasets_api/15_cancel_extraction_of_a_deleted_dataset.json": 404,
    "datasets_api/16_cancel_evaluation_unknown.json": 404,
}

# Events of other folders replayed first, for a folder whose handler only reads what others write.
GIVEN: dict[str, list[str]] = {
    "tasks_api": ["networks_api/01_create_multipart.json", "networks_api/02_create_json.json"],
    "recognition_api": ["networks_api/01_create_multipart.json"],
    "endpoints_api": ["networks_api/01_create_multipart.json"],
    "jobs_api": ["networks_api/01_create_multipart.json"],
}


def event_files() -> list[str]:
    return sorted(path.relative_to(EVENTS).as_posix() for path in EVENTS.glob("*/*.json"))


def folders() -> list[str]:
    return sorted({name.split("/", 1)[0] for name in event_files()})


def replay(name: str) -> Any:
    """Call `functions.<folder>.app.handler` with the event, as Lambda (or `sam local invoke -e`) would."""
    from tensorgate_local.lambdas import LocalContext

    folder = name.split("/", 1)[0]
    module = importlib.import_module(f"functions.{folder}.app")
    event = json.loads((EVENTS / name).read_text())
    return module.handler(event, LocalContext(function_name=folder, timeout_seconds=29))


def test_every_event_file_has_an_expected_status_and_every_expectation_a_file() -> None:
    files = set(event_files())
    assert files, "events/ holds no event"
    assert sorted(files - EXPECTED_STATUS.keys()) == [], "event files without an expected status"
    assert sorted(EXPECTED_STATUS.keys() - files) == [], "expected statuses without an event file"
    for given in GIVEN.values():
        assert set(given) <= files


@pytest.mark.parametrize("folder", folders())
def test_events_of_folder_replay_through_its_handler_with_expected_status(folder: str, aws: dict[str, Any]) -> None:
    for name in GIVEN.get(folder, []):
        assert replay(name)["statusCode"] == EXPECTED_STATUS[name], name
    for name in [name for name in event_files() if name.startswith(f"{folder}/")]:
        response = replay(name)
        assert response["statusCode"] == EXPECTED_STATUS[name], f"{name}: {response.get('body')}"
        if response["statusCode"] == 204:
            assert not response.get("body")
            continue
        # Powertools answers a REST proxy event with multi-value headers.
        headers = {key.lower(): [value] for key, value in (response.get("headers") or {}).items()}
        headers |= {key.lower(): values for key, values in (response.get("multiValueHeaders") or {}).items()}
        assert headers.get("content-type") == ["application/json"], name
        body = json.loads(response["body"])
        if response["statusCode"] >= 400:
            assert isinstance(body["error"], str) and body["error"], name
