"""Search, filters, lookup and cursor pages on networks and recognition specs, under moto (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.integration.test_recognition_api import spec_body

HEADERS = {"X-API-KEY": DEV_KEY}


def names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["results"]]


def follow(api: Client, url: str) -> tuple[list[str], list[int]]:
    """Every page from `url` on, following `next` links: the names and each page's count."""
    seen: list[str] = []
    counts: list[int] = []
    while url:
        page = api.get(url.split("localhost", 1)[-1], headers=HEADERS).json
        seen += names(page)
        counts.append(page["count"])
        url = page["next"]
    return seen, counts


def test_networks_search_filters_lookup_and_cursor_pages(api: Client) -> None:
    created = []
    for name, description in (
        ("Road signs", "German traffic signs"),
        ("road damage", "potholes"),
        ("faces", "detects a ROAD user's face"),
        ("Road signs", "retrained"),
        ("plants", ""),
    ):
        response = api.post("/v0.7/networks/", headers=HEADERS, json={"name": name, "description": description})
        assert response.status_code == 201, response.text
        created.append(response.json)
    api.post("/v0.7/networks/", headers={"X-API-KEY": OTHER_KEY}, json={"name": "road of another account"})
    assert created[0]["author"] == "dev"

    # search: parts of name, description or author, any case; every page's link keeps it
    assert follow(api, "/v0.7/networks/?search=road&limit=2") == (
        ["Road signs", "road damage", "faces", "Road signs"],
        [3, 4],  # found so far plus one while more follow, exact on the last page
    )
    assert names(api.get("/v0.7/networks?search=POTHOLE", headers=HEADERS).json) == ["road damage"]
    assert names(api.get("/v0.7/networks?name=road&author=DE", headers=HEADERS).json) == [
        "Road signs",
        "road damage",
        "Road signs",
    ]
    assert api.get("/v0.7/networks?author=nobody", headers=HEADERS).json["results"] == []
    assert len(api.get("/v0.7/networks?status=pending", headers=HEADERS).json["results"]) == 5
    assert api.get("/v0.7/networks?status=ready", headers=HEADERS).json["results"] == []

    # unfiltered: cursor links, the stored count, offset still accepted
    assert follow(api, "/v0.7/networks/?limit=2") == ([n["name"] for n in created], [5, 5, 5])
    assert names(api.get("/v0.7/networks?offset=3&limit=10", headers=HEADERS).json) == ["Road signs", "plants"]
    beyond = api.get("/v0.7/networks?offset=9", headers=HEADERS).json
    assert (beyond["count"], beyond["next"], beyond["results"]) == (5, None, [])

    # lookup: exact and case-sensitive; of equal names, the newest
    assert api.get("/v0.7/networks/lookup?name=Road%20signs", headers=HEADERS).json["id"] == created[3]["id"]
    for missing in ("road signs", "Road", "Road signs "):
        assert api.get("/v0.7/networks/lookup", query_string={"name": missing}, headers=HEADERS).status_code == 404
    assert api.get("/v0.7/networks/lookup", headers=HEADERS).status_code == 400

    # the count follows deletes
    api.delete(f"/v0.7/networks/{created[1]['id']}", headers=HEADERS)
    assert api.get("/v0.7/networks", headers=HEADERS).json["count"] == 4


def test_recognition_specs_search_status_and_lookup(api: Client) -> None:
    from tests.integration.test_inference_api import ready_network
    from tests.integration.test_recognition_api import create_version

    network = ready_network(api)
    pets = api.post("/v0.7/recognition/specs", headers=HEADERS, json=spec_body(name="Pets")).json
    api.post("/v0.7/recognition/specs", headers=HEADERS, json=spec_body(name="weather", description="sky or pets"))
    create_version(api, pets["id"], network["id"])
    assert names(api.get("/v0.7/recognition/specs?search=PETS", headers=HEADERS).json) == ["Pets", "weather"]
    assert names(api.get("/v0.7/recognition/specs?status=ready", headers=HEADERS).json) == ["Pets"]
    assert names(api.get("/v0.7/recognition/specs?status=pending", headers=HEADERS).json) == ["weather"]
    assert api.get("/v0.7/recognition/specs/lookup?name=Pets", headers=HEADERS).json["id"] == pets["id"]
    assert api.get("/v0.7/recognition/specs/lookup?name=pets", headers=HEADERS).status_code == 404
    other = {"X-API-KEY": OTHER_KEY}
    assert api.get("/v0.7/recognition/specs/lookup?name=Pets", headers=other).status_code == 404
