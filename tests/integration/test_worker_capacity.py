"""The endpoints' warm minimum on the worker services' scalable targets, under moto's Application Auto Scaling."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.integration.test_inference_api import ready_network

GPU_SERVICE = "service/tensorgate-workers/gpu-worker"
CPU_SERVICE = "service/tensorgate-workers/cpu-worker"


def scalable_targets(session: Any, maximum: int = 4) -> Any:
    """The worker services and their targets as template.yaml declares them: from 0 to `maximum` tasks."""
    ecs = session.client("ecs")
    ecs.create_cluster(clusterName="tensorgate-workers")
    ecs.register_task_definition(
        family="worker", containerDefinitions=[{"name": "worker", "image": "worker", "memoryReservation": 2048}]
    )
    for service in ("gpu-worker", "cpu-worker"):
        ecs.create_service(cluster="tensorgate-workers", serviceName=service, taskDefinition="worker", desiredCount=0)
    autoscaling = session.client("application-autoscaling")
    for resource in (GPU_SERVICE, CPU_SERVICE):
        autoscaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=resource,
            ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=0,
            MaxCapacity=maximum,
        )
    return autoscaling


def minimums(autoscaling: Any) -> dict[str, int]:
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    return {target["ResourceId"]: target["MinCapacity"] for target in targets}


def test_replicas_raise_and_release_the_minimum_of_their_devices_service(
    api: Client, aws: dict[str, Any], monkeypatch: Any
) -> None:
    from tensorgate import wiring

    autoscaling = scalable_targets(aws["session"])
    monkeypatch.setenv("GPU_WORKER_SERVICE", GPU_SERVICE)
    monkeypatch.setenv("CPU_WORKER_SERVICE", CPU_SERVICE)
    wiring.reset()
    headers = {"X-API-KEY": DEV_KEY}
    network = ready_network(api)

    def create(name: str, **fields: Any) -> int:
        response = api.post(
            "/v0.7/endpoints", headers=headers, json={"name": name, "network_id": network["id"], **fields}
        )
        assert response.status_code == 201, response.text
        return int(response.json["id"])

    gpu = create("gpu", replicas=2, gpu_required=True)
    cpu = create("cpu", replicas=1)
    create("cold", replicas=0)
    assert minimums(autoscaling) == {GPU_SERVICE: 2, CPU_SERVICE: 1}
    # More than the service's maximum holds it at its maximum; the sum is kept, so releasing is exact.
    create("big", replicas=5, gpu_required=True)
    assert minimums(autoscaling) == {GPU_SERVICE: 4, CPU_SERVICE: 1}
    big = api.get("/v0.7/endpoints/lookup?name=big", headers=headers).json["id"]
    assert api.delete(f"/v0.7/endpoints/{big}", headers=headers).status_code == 204
    assert minimums(autoscaling) == {GPU_SERVICE: 2, CPU_SERVICE: 1}
    # Moving an endpoint to the other device moves what it holds; a shutdown releases it.
    api.patch(f"/v0.7/endpoints/{cpu}", headers=headers, json={"gpu_required": True, "replicas": 3})
    assert minimums(autoscaling) == {GPU_SERVICE: 4, CPU_SERVICE: 0}  # 2 + 3 held, 4 at most
    api.post(f"/v0.7/endpoints/{gpu}/shutdown", headers=headers)
    assert minimums(autoscaling) == {GPU_SERVICE: 3, CPU_SERVICE: 0}
    api.post(f"/v0.7/endpoints/{cpu}/shutdown", headers=headers)
    assert minimums(autoscaling) == {GPU_SERVICE: 0, CPU_SERVICE: 0}
