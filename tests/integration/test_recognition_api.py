"""Recognition specs and versions through the gateway emulation, under moto (DESIGN §7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.integration.test_inference_api import queued, ready_network

HEADERS = {"X-API-KEY": DEV_KEY}
PETS = [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 7, "name": "bird"}]


def spec_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "pets",
        "description": "Which pet is in the picture",
        "metadata": {"project": "pets"},
        "outputs": [{"labels": {"roi": "NONE", "exclusive": True, "labels": PETS}}],
        **fields,
    }


def create_spec(api: Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/v0.7/recognition/specs/", headers=HEADERS, json=spec_body(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json)


def classification(thresholds: list[float] | None = None, tensor: str = "probabilities") -> dict[str, Any]:
    return {"classification": {"output_tensor": tensor, "thresholds": thresholds or [0.5, 0.5, 0.5]}}


def create_version(api: Client, spec_id: int, network_id: int, status: int = 201, **fields: Any) -> Any:
    body = {"spec_id": spec_id, "network_id": network_id, "post_processings": [classification()], **fields}
    response = api.post("/v0.7/recognition/versions", headers=HEADERS, json=body)
    assert response.status_code == status, response.text
    return response.json


# -- specs ------------------------------------------------------------------------------------


def test_create_spec_answers_integer_id_outputs_and_no_current_version(api: Client) -> None:
    spec = create_spec(api)
    assert isinstance(spec["id"], int)
    assert spec["outputs"] == [{"labels": {"roi": "NONE", "exclusive": True, "labels": PETS}}]
    assert spec["current_version_id"] is None
    assert spec["metadata"] == {"project": "pets"}
    assert spec["update_date"].endswith("Z")
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json == spec


def test_list_specs_paginates_and_never_lists_networks_or_another_accounts_specs(api: Client) -> None:
    ready_network(api)
    first, second = create_spec(api, name="first"), create_spec(api, name="second")
    api.post("/v0.7/recognition/specs", headers={"X-API-KEY": OTHER_KEY}, json=spec_body(name="theirs"))
    page = api.get("/v0.7/recognition/specs/?limit=1", headers=HEADERS).json
    assert page["count"] == 2 and page["previous"] is None
    assert [spec["id"] for spec in page["results"]] == [first["id"]]
    # The next link carries a cursor (the page after it costs the same however deep), and its offset.
    assert "/v0.7/recognition/specs/?cursor=" in page["next"] and page["next"].endswith("&offset=1&limit=1")
    following = api.get(page["next"].split("localhost", 1)[-1], headers=HEADERS).json
    assert [spec["id"] for spec in following["results"]] == [second["id"]] and following["next"] is None
    assert api.get("/v0.7/recognition/specs?offset=1", headers=HEADERS).json["results"][0]["id"] == second["id"]
    # The networks' own list still holds networks only.
    assert [n["name"] for n in api.get("/v0.7/networks", headers=HEADERS).json["results"]] == ["classifier"]


def test_patch_spec_changes_name_description_metadata_and_refuses_outputs(api: Client) -> None:
    spec = create_spec(api)
    changed = api.patch(
        f"/v0.7/recognition/specs/{spec['id']}/", headers=HEADERS, json={"name": "animals", "metadata": {"v": 2}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json["name"] == "animals" and changed.json["metadata"] == {"v": 2}
    assert changed.json["outputs"] == spec["outputs"]
    refused = api.patch(f"/v0.7/recognition/specs/{spec['id']}/", headers=HEADERS, json={"outputs": []})
    assert refused.status_code == 400 and "outputs" in refused.json["error"]
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json["name"] == "animals"


def test_another_accounts_spec_answers_404_on_every_route(api: Client) -> None:
    spec = create_spec(api)
    other = {"X-API-KEY": OTHER_KEY}
    path = f"/v0.7/recognition/specs/{spec['id']}/"
    assert api.get(path, headers=other).status_code == 404
    assert api.patch(path, headers=other, json={"name": "mine"}).status_code == 404
    assert api.delete(path, headers=other).status_code == 404
    assert api.get(path + "versions", headers=other).status_code == 404
    assert api.get(path, headers=HEADERS).json["name"] == "pets"


def test_delete_spec_answers_204_then_404_and_deletes_its_versions(api: Client) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    version = create_version(api, spec["id"], network["id"])
    assert api.delete(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).status_code == 204
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).status_code == 404
    assert api.get(f"/v0.7/recognition/versions/{version['id']}", headers=HEADERS).status_code == 404
    assert api.delete(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).status_code == 404


def test_public_specs_answer_by_slug_and_list_apart_from_the_accounts(api: Client) -> None:
    from tensorgate import wiring

    spec = create_spec(api)
    wiring.recognition_service().publish_spec("dev", spec["id"], "public-pets")
    public = api.get("/v0.7/recognition/public/public-pets/", headers={"X-API-KEY": OTHER_KEY})
    assert public.status_code == 200, public.text
    assert public.json["id"] == "public-pets" and public.json["outputs"] == spec["outputs"]
    listed = api.get("/v0.7/recognition/public", headers=HEADERS).json
    assert [item["id"] for item in listed["results"]] == ["public-pets"]
    assert api.get("/v0.7/recognition/public/nothing-here", headers=HEADERS).status_code == 404
    assert api.get("/v0.7/recognition/specs", headers=HEADERS).json["count"] == 1


# -- versions ---------------------------------------------------------------------------------


def test_first_version_becomes_current_and_a_second_does_not(api: Client) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    first = create_version(api, spec["id"], network["id"])
    assert first["spec_id"] == spec["id"] and first["network_id"] == network["id"]
    assert first["spec_name"] == "pets" and first["network_name"] == "classifier"
    assert first["post_processings"] == [classification()]
    second = create_version(api, spec["id"], network["id"], post_processings=[classification([0.1, 0.2, 0.3])])
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json["current_version_id"] == first["id"]
    switched = api.patch(
        f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS, json={"current_version_id": second["id"]}
    )
    assert switched.status_code == 200 and switched.json["current_version_id"] == second["id"]


def test_versions_list_by_spec_and_for_the_account(api: Client) -> None:
    pets, other = create_spec(api), create_spec(api, name="other")
    network = ready_network(api)
    one = create_version(api, pets["id"], network["id"])
    two = create_version(api, other["id"], network["id"])
    three = create_version(api, pets["id"], network["id"])
    of_pets = api.get(f"/v0.7/recognition/specs/{pets['id']}/versions", headers=HEADERS).json
    assert [v["id"] for v in of_pets["results"]] == [one["id"], three["id"]] and of_pets["count"] == 2
    everything = api.get("/v0.7/recognition/versions/", headers=HEADERS).json
    assert [v["id"] for v in everything["results"]] == [one["id"], two["id"], three["id"]]
    assert api.get(f"/v0.7/recognition/versions/{two['id']}/", headers=HEADERS).json == two
    assert api.get("/v0.7/recognition/versions", headers={"X-API-KEY": OTHER_KEY}).json["count"] == 0


def test_version_on_a_network_not_ready_is_refused_with_a_sentence(api: Client) -> None:
    spec = create_spec(api)
    network = ready_network(api, status="pending")
    refused = create_version(api, spec["id"], network["id"], status=409)
    assert "not ready" in refused["error"]
    assert api.get("/v0.7/recognition/versions", headers=HEADERS).json["count"] == 0


def test_version_thresholds_must_match_the_labels_and_kinds_the_outputs(api: Client) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    short = create_version(api, spec["id"], network["id"], 400, post_processings=[classification([0.5, 0.5])])
    assert "3 thresholds" in short["error"]
    detection = {
        "detection": {
            "direct_output": {"boxes_tensor": "probabilities", "scores_tensor": "probabilities"},
            "thresholds": [0.5, 0.5, 0.5],
        }
    }
    wrong_kind = create_version(api, spec["id"], network["id"], 400, post_processings=[detection])
    assert "classification" in wrong_kind["error"]
    two = create_version(api, spec["id"], network["id"], 400, post_processings=[classification()] * 2)
    assert "1 output" in two["error"]
    unknown = create_version(api, spec["id"], network["id"], 400, post_processings=[classification(tensor="logits")])
    assert "logits" in unknown["error"]
    missing_spec = create_version(api, 424242, network["id"], 400)
    assert "spec_id" in missing_spec["error"]
    theirs = api.post("/v0.7/networks", headers={"X-API-KEY": OTHER_KEY}, json={"name": "theirs"}).json
    assert "network_id" in create_version(api, spec["id"], theirs["id"], 400)["error"]
    assert api.get("/v0.7/recognition/versions", headers=HEADERS).json["count"] == 0


def test_patch_current_version_must_be_a_version_of_that_spec(api: Client) -> None:
    pets, other = create_spec(api), create_spec(api, name="other")
    network = ready_network(api)
    version = create_version(api, other["id"], network["id"])
    refused = api.patch(
        f"/v0.7/recognition/specs/{pets['id']}", headers=HEADERS, json={"current_version_id": version["id"]}
    )
    assert refused.status_code == 400 and "current_version_id" in refused.json["error"]
    cleared = api.patch(f"/v0.7/recognition/specs/{other['id']}", headers=HEADERS, json={"current_version_id": None})
    assert cleared.status_code == 200 and cleared.json["current_version_id"] is None


def test_deleting_the_current_version_clears_current_version_id(api: Client) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    current = create_version(api, spec["id"], network["id"])
    other = create_version(api, spec["id"], network["id"])
    assert api.delete(f"/v0.7/recognition/versions/{other['id']}/", headers=HEADERS).status_code == 204
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json["current_version_id"] == current["id"]
    assert api.delete(f"/v0.7/recognition/versions/{current['id']}", headers=HEADERS).status_code == 204
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json["current_version_id"] is None
    assert api.get(f"/v0.7/recognition/versions/{current['id']}", headers=HEADERS).status_code == 404


def test_deleting_a_network_deletes_its_versions_and_clears_the_current_one(api: Client) -> None:
    spec = create_spec(api)
    doomed, kept = ready_network(api), ready_network(api, name="kept")
    gone = create_version(api, spec["id"], doomed["id"])
    stays = create_version(api, spec["id"], kept["id"])
    assert api.delete(f"/v0.7/networks/{doomed['id']}", headers=HEADERS).status_code == 204
    assert api.get(f"/v0.7/recognition/versions/{gone['id']}", headers=HEADERS).status_code == 404
    assert api.get(f"/v0.7/recognition/versions/{stays['id']}", headers=HEADERS).status_code == 200
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).json["current_version_id"] is None


def test_admin_publishes_and_unpublishes_a_spec_by_slug(api: Client, capsys: pytest.CaptureFixture[str]) -> None:
    from tensorgate import admin

    spec = create_spec(api)
    assert admin.main(["publish-spec", "dev", str(spec["id"]), "pets-v1"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "pets-v1"
    assert api.get("/v0.7/recognition/public/pets-v1", headers=HEADERS).json["name"] == "pets"
    assert admin.main(["publish-spec", "dev", str(spec["id"]), "pets-v1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert admin.main(["unpublish-spec", "pets-v1"]) == 0
    assert api.get("/v0.7/recognition/public/pets-v1", headers=HEADERS).status_code == 404
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS).status_code == 200


# -- inference --------------------------------------------------------------------------------

IMAGE_REQUEST = {"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}], "show_discarded": True}


def test_inference_through_a_version_queues_the_versions_plan_on_its_network(api: Client, aws: dict[str, Any]) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    version = create_version(api, spec["id"], network["id"], post_processings=[classification([0.1, 0.2, 0.3])])
    response = api.post(f"/v0.7/recognition/versions/{version['id']}/inference", headers=HEADERS, json=IMAGE_REQUEST)
    assert response.status_code == 200, response.text
    (message,) = queued(aws)
    assert message["task_id"] == response.json["task_id"] and message["network_id"] == network["id"]
    assert message["show_discarded"] is True
    assert message["recognition"] == {
        "spec_id": spec["id"],
        "version_id": version["id"],
        "labels": [PETS],
        "post_processings": [classification([0.1, 0.2, 0.3])],
    }
    task = api.get(f"/v0.7/tasks/{response.json['task_id']}", headers=HEADERS).json
    assert task["status"] == "pending" and task["kind"] == "inference"


def test_inference_through_a_spec_runs_its_current_version_and_follows_a_switch(
    api: Client, aws: dict[str, Any]
) -> None:
    spec = create_spec(api)
    first_network, second_network = ready_network(api), ready_network(api, name="retrained")
    first = create_version(api, spec["id"], first_network["id"])
    second = create_version(api, spec["id"], second_network["id"])
    path = f"/v0.7/recognition/specs/{spec['id']}/inference/"
    assert api.post(path, headers=HEADERS, json=IMAGE_REQUEST).status_code == 200
    api.patch(f"/v0.7/recognition/specs/{spec['id']}", headers=HEADERS, json={"current_version_id": second["id"]})
    assert api.post(path, headers=HEADERS, json=IMAGE_REQUEST).status_code == 200
    messages = queued(aws)
    assert [(m["recognition"]["version_id"], m["network_id"]) for m in messages] == [
        (first["id"], first_network["id"]),
        (second["id"], second_network["id"]),
    ]


def test_inference_through_a_spec_without_current_version_is_409_with_a_sentence(
    api: Client, aws: dict[str, Any]
) -> None:
    spec = create_spec(api)
    network = ready_network(api)
    version = create_version(api, spec["id"], network["id"])
    api.delete(f"/v0.7/recognition/versions/{version['id']}", headers=HEADERS)
    response = api.post(f"/v0.7/recognition/specs/{spec['id']}/inference", headers=HEADERS, json=IMAGE_REQUEST)
    assert response.status_code == 409, response.text
    assert "no current version" in response.json["error"]
    assert queued(aws) == []


def test_inference_through_another_accounts_version_or_spec_is_404(api: Client, aws: dict[str, Any]) -> None:
    spec = create_spec(api)
    version = create_version(api, spec["id"], ready_network(api)["id"])
    other = {"X-API-KEY": OTHER_KEY}
    for path in (
        f"/v0.7/recognition/versions/{version['id']}/inference",
        f"/v0.7/recognition/specs/{spec['id']}/inference",
    ):
        assert api.post(path, headers=other, json=IMAGE_REQUEST).status_code == 404
    assert queued(aws) == []
