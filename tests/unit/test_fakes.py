"""The in-memory fakes keep every method of the ports they stand for, with the same parameters."""

from __future__ import annotations

import inspect

import pytest
from tensorgate import ports

from tests import fakes

FAKES = {
    ports.NetworkRepository: fakes.InMemoryNetworkRepository,
    ports.TaskRepository: fakes.InMemoryTaskRepository,
    ports.RecognitionRepository: fakes.InMemoryRecognitionRepository,
    ports.ApiKeyRepository: fakes.InMemoryApiKeyRepository,
    ports.IdAllocator: fakes.CountingIdAllocator,
    ports.BlobStore: fakes.InMemoryBlobStore,
    ports.MessageQueue: fakes.InMemoryMessageQueue,
    ports.GatewayKeys: fakes.InMemoryGatewayKeys,
    ports.EndpointRepository: fakes.InMemoryEndpointRepository,
    ports.WorkerCapacity: fakes.InMemoryWorkerCapacity,
}


def port_methods(port: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(port).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_every_port_has_a_fake() -> None:
    protocols = {
        member for _, member in inspect.getmembers(ports, inspect.isclass) if member.__module__ == ports.__name__
    }
    assert protocols == set(FAKES)


@pytest.mark.parametrize("port", list(FAKES), ids=lambda port: port.__name__)
def test_fake_implements_every_method_of_its_port(port: type) -> None:
    fake = FAKES[port]
    for name, signature in port_methods(port).items():
        assert hasattr(fake, name), f"{fake.__name__} lacks {name}"
        implemented = inspect.signature(getattr(fake, name))
        assert list(implemented.parameters) == list(signature.parameters), f"{fake.__name__}.{name}"
        defaults = [parameter.default for parameter in signature.parameters.values()]
        assert [parameter.default for parameter in implemented.parameters.values()] == defaults
