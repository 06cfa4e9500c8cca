"""`tensorgate-admin backfill-search`: records stored before search get the attributes lists search on, under moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tensorgate import admin
from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.integration.test_recognition_api import spec_body

HEADERS = {"X-API-KEY": DEV_KEY}
SEARCH_ATTRIBUTES = ("search_text", "name", "name_lower", "author_lower", "status")


def forget_search_attributes(aws: dict[str, Any]) -> int:
    """Make the account's networks and specs look as they were stored before search existed."""
    dynamodb = aws["session"].client("dynamodb")
    items = dynamodb.scan(TableName="NetworksTable")["Items"]
    stripped = 0
    for item in items:
        if item["account_id"]["S"] in ("dev", "dev#recognition-specs"):
            dynamodb.update_item(
                TableName="NetworksTable",
                Key={"account_id": item["account_id"], "network_id": item["network_id"]},
                UpdateExpression="REMOVE " + ", ".join(f"#{name}" for name in SEARCH_ATTRIBUTES),
                ExpressionAttributeNames={f"#{name}": name for name in SEARCH_ATTRIBUTES},
            )
            stripped += 1
    return stripped


def backfill(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict[str, int]:
    assert admin.main(["backfill-search", *arguments]) == 0
    counts: dict[str, int] = json.loads(capsys.readouterr().out.splitlines()[-1])  # after the handlers' logs
    return counts


def names(api: Client, path: str) -> list[str]:
    response = api.get(path, headers=HEADERS)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json["results"]]


def test_backfill_search_gives_old_records_their_attributes_once_page_by_page(
    api: Client, aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given networks and a spec stored before search existed, beside an endpoint stored with its attributes
    for name in ("Road signs", "faces", "plants"):
        assert api.post("/v0.7/networks/", headers=HEADERS, json={"name": name}).status_code == 201
    assert api.post("/v0.7/recognition/specs/", headers=HEADERS, json=spec_body(name="road colours")).status_code == 201
    network_id = api.get("/v0.7/networks/lookup?name=faces", headers=HEADERS).json["id"]
    endpoint = {"name": "road endpoint", "network_id": network_id}
    assert api.post("/v0.7/endpoints/", headers=HEADERS, json=endpoint).status_code == 201
    assert forget_search_attributes(aws) == 4
    assert names(api, "/v0.7/networks/?search=road") == []
    assert api.get("/v0.7/recognition/specs/lookup?name=road colours", headers=HEADERS).status_code == 404

    # When the backfill runs, two items a page
    first = backfill(capsys, "--page-size", "2")

    # Then every network and spec is found again, the endpoint was left as it was
    assert first["updated"] == 4 and first["changed_meanwhile"] == 0 and first["pages"] >= 3
    assert names(api, "/v0.7/networks/?search=ROAD") == ["Road signs"]
    assert names(api, "/v0.7/networks/?status=pending&limit=10") == ["Road signs", "faces", "plants"]
    assert names(api, "/v0.7/recognition/specs/?search=colours") == ["road colours"]
    assert api.get("/v0.7/recognition/specs/lookup?name=road colours", headers=HEADERS).status_code == 200
    assert names(api, "/v0.7/endpoints/?search=road") == ["road endpoint"]
    # And a second run finds nothing left to write
    second = backfill(capsys)
    assert second["updated"] == 0 and second["current"] == 4 and second["scanned"] == first["scanned"]


def test_backfill_search_refuses_a_page_size_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["backfill-search", "--page-size", "0"]) == 2
    assert "--page-size takes 1 to 1000 items" in capsys.readouterr().err
