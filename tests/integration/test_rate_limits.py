"""Per-key rate limits: the local gateway enforces the template's usage-plan throttle, per key."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY


def test_gateway_takes_the_usage_plan_throttle_from_the_template(api: Client, aws: dict[str, Any]) -> None:
    gateway = api.application
    parameters = aws["template"].parameters
    assert gateway.throttle.rate == float(parameters["KeyRateLimit"])
    assert gateway.throttle.burst == int(parameters["KeyBurstLimit"])


def test_a_key_over_its_burst_gets_429_and_other_keys_are_unaffected(api: Client) -> None:
    from tensorgate_local.gateway import KeyThrottle

    frozen = [0.0]
    api.application.throttle = KeyThrottle(rate=1.0, burst=3, clock=lambda: frozen[0])
    statuses = [api.get("/v0.7/networks", headers={"X-API-KEY": DEV_KEY}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.get("/v0.7/networks", headers={"X-API-KEY": DEV_KEY})
    assert refused.json["error"].startswith("Too many requests") and refused.headers["Retry-After"] == "1"
    assert api.get("/v0.7/networks", headers={"X-API-KEY": OTHER_KEY}).status_code == 200
    frozen[0] += 1.0  # one second refills one request at 1 request/s
    assert api.get("/v0.7/networks", headers={"X-API-KEY": DEV_KEY}).status_code == 200
    assert api.get("/v0.7/networks", headers={"X-API-KEY": DEV_KEY}).status_code == 429


def test_admin_keys_join_the_usage_plan_when_one_is_configured(aws: dict[str, Any], monkeypatch: Any) -> None:
    from tensorgate import wiring

    apigateway = aws["session"].client("apigateway")
    api_id = apigateway.create_rest_api(name="tensorgate")["id"]
    plan = apigateway.create_usage_plan(name="keys", apiStages=[])
    monkeypatch.setenv("USAGE_PLAN_ID", plan["id"])
    wiring.reset()
    record, key = wiring.auth_service().create_key("carol")
    [registered] = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert registered["value"] == key and registered["name"] == f"tensorgate-{record.key_id}"
    assert wiring.auth_service().revoke(record.key_id)
    assert apigateway.get_api_keys()["items"] == []
    assert api_id
