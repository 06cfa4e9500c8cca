"""API Gateway keys: each Tensorgate key also joins the usage plan that throttles it."""

from __future__ import annotations

from typing import Any

from tensorgate.adapters.aws import client

KEY_NAME_PREFIX = "tensorgate-"


class ApiGatewayKeys:
    def __init__(self, usage_plan_id: str, apigateway: Any | None = None) -> None:
        self._usage_plan_id = usage_plan_id
        self._apigateway = apigateway or client("apigateway")

    def register(self, key_id: str, api_key: str) -> None:
        created = self._apigateway.create_api_key(
            name=KEY_NAME_PREFIX + key_id, value=api_key, enabled=True, tags={"key_id": key_id}
        )
        self._apigateway.create_usage_plan_key(usagePlanId=self._usage_plan_id, keyId=created["id"], keyType="API_KEY")

    def remove(self, key_id: str) -> None:
        found = self._apigateway.get_api_keys(nameQuery=KEY_NAME_PREFIX + key_id, includeValues=False)
        for item in found.get("items", []):
            if item.get("name") == KEY_NAME_PREFIX + key_id:
                self._apigateway.delete_api_key(apiKey=item["id"])
