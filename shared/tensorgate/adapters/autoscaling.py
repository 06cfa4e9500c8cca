"""The worker services' warm minimum through Application Auto Scaling, held up by running endpoints' replicas."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client
from tensorgate.adapters.dynamodb import _from_item, _to_item, _unavailable

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"


class WorkerServiceCapacity:
    """Per device (`cpu`, `gpu`), the replicas every running endpoint holds, summed in an atomic counter of
    the counters table (`warm-replicas-<device>`), become the minimum capacity of that device's worker
    service's scalable target, within its maximum. The backlog scaling policies still add tasks above it;
    with nothing held the minimum is 0 and the service scales to zero when its queue is empty."""

    def __init__(
        self,
        counters_table: str,
        services: dict[str, str],
        autoscaling: Any | None = None,
        dynamodb: Any | None = None,
    ) -> None:
        self._table = counters_table
        self._services = services
        self._autoscaling = autoscaling or client("application-autoscaling")
        self._db = dynamodb or client("dynamodb")

    def change(self, device: str, delta: int) -> int:
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=_to_item({"name": f"warm-replicas-{device}"}),
                UpdateExpression="ADD #value :delta",
                ExpressionAttributeNames={"#value": "value"},
                ExpressionAttributeValues=_to_item({":delta": delta}),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            raise _unavailable(error, "record the endpoint's replicas") from None
        held = max(0, int(_from_item(response["Attributes"])["value"]))
        resource = self._services.get(device, "")
        if resource:
            self._set_minimum(resource, held)
        return held

    def minimum(self, device: str) -> int | None:
        """The service's minimum capacity as Application Auto Scaling holds it (None: no scalable target)."""
        target = self._target(self._services.get(device, ""))
        return None if target is None else int(target["MinCapacity"])

    def _target(self, resource: str) -> dict[str, Any] | None:
        if not resource:
            return None
        try:
            found = self._autoscaling.describe_scalable_targets(
                ServiceNamespace=NAMESPACE, ResourceIds=[resource], ScalableDimension=DIMENSION
            )["ScalableTargets"]
        except ClientError as error:
            raise _unavailable(error, "read the worker service's capacity") from None
        return found[0] if found else None

    def _set_minimum(self, resource: str, held: int) -> None:
        target = self._target(resource)
        if target is None:
            return
        try:
            self._autoscaling.register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=resource,
                ScalableDimension=DIMENSION,
                MinCapacity=min(held, int(target["MaxCapacity"])),
                MaxCapacity=int(target["MaxCapacity"]),
            )
        except ClientError as error:
            raise _unavailable(error, "change the worker service's warm minimum") from None
