"""Tenancy: for every route of template.yaml, another account's resources answer as if they did not exist."""

from __future__ import annotations

import io
from typing import Any

import pytest
from tensorgate_local.template import Template
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY, stored_state

OWNER = {"X-API-KEY": DEV_KEY}
STRANGER = {"X-API-KEY": OTHER_KEY}

# What a stranger gets on each route, given the owner's network `n` and its task `t`.
CASES: dict[tuple[str, str], tuple[str, dict[str, Any], int]] = {
    ("POST", "/v0.7/networks"): ("/v0.7/networks/", {"json": {"name": "mine"}}, 201),
    ("GET", "/v0.7/networks"): ("/v0.7/networks/", {}, 200),
    ("GET", "/v0.7/networks/public"): ("/v0.7/networks/public/", {}, 200),
    ("GET", "/v0.7/networks/public/{slug}"): ("/v0.7/networks/public/{n}/", {}, 404),
    ("GET", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {}, 404),
    ("PATCH", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {"json": {"name": "stolen"}}, 404),
    ("DELETE", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {}, 404),
    ("POST", "/v0.7/networks/{network_id}/inference"): (
        "/v0.7/networks/{n}/inference",
        {"json": {"inputs": [{"image": {"source": "https://example.com/a.jpg"}}]}},
        404,
    ),
    ("GET", "/v0.7/tasks"): ("/v0.7/tasks/?task_ids={t}", {}, 200),
    ("GET", "/v0.7/tasks/{task_id}"): ("/v0.7/tasks/{t}/", {}, 404),
}
DOCUMENTATION_ROUTES = {("GET", "/v0.7/openapi.json"), ("GET", "/v0.7/docs")}


def test_every_route_has_a_tenancy_case() -> None:
    routes = {(route.method, route.path) for route in Template().routes()} - DOCUMENTATION_ROUTES
    assert routes == set(CASES)


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_strangers_never_see_or_change_the_owners_network(
    api: Client, aws: dict[str, Any], route: tuple[str, str]
) -> None:
    created = api.post(
        "/v0.7/networks",
        headers=OWNER,
        data={"name": "private", "model.onnx": (io.BytesIO(b"onnx"), "model.onnx")},
    ).json
    path, options, status = CASES[route]
    before = stored_state(aws)
    response = api.open(
        path.format(n=created["id"], t=created["task_id"]), method=route[0], headers=STRANGER, **options
    )
    assert response.status_code == status, response.text
    body = response.json
    if status == 404:
        assert "error" in body and stored_state(aws) == before
    elif route[0] == "GET":
        assert body["count"] == 0 and body["results"] == []
    else:  # the stranger's own create lives in the stranger's account
        assert body["id"] != created["id"]
    owner_view = api.get(f"/v0.7/networks/{created['id']}", headers=OWNER).json
    assert owner_view["name"] == "private"
