"""A v0.7 client, speaking the seed's wire format as the existing Python client does, against `make dev`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.v07_client import ClientError, V07Client, flatten_for_multipart

pytestmark = pytest.mark.e2e

PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "map/TensorArrayStack/TensorArrayGatherV3:0",
            "image": {
                "dimension_order": "NHWC",
                "target_size": "299x299",
                "resize_type": "CROP",
                "mean_file": "mean.npy",
                "color_channels": "BGR",
                "pixel_scaling": 2.0,
                "data_type": "FLOAT32",
            },
        }
    ],
    "batched_output": True,
}
POSTPROCESSINGS = [{"tensors_output": {"tensors": ["softmax:0"]}}]
METADATA = {"author": "me", "project": "Go to mars", "epochs": 12}


@pytest.fixture
def model_files(tmp_path: Path) -> Iterator[dict[str, IO[bytes]]]:
    """The seed's file set, opened as its sample opens them: a dict of file name → open file."""
    (tmp_path / "variables").mkdir()
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x01 a small fake SavedModel graph")
    (tmp_path / "variables" / "variables.index").write_bytes(b"fake variables index")
    (tmp_path / "variables" / "variables.data-00000-of-00001").write_bytes(b"fake variables data")
    with open(tmp_path / "mean.npy", "wb") as mean:
        np.save(mean, np.ones((1, 1, 3), dtype=np.float32), allow_pickle=False)
    paths = {
        "saved_model.pb": tmp_path / "saved_model.pb",
        "variables.index": tmp_path / "variables" / "variables.index",
        "variables.data-00000-of-00001": tmp_path / "variables" / "variables.data-00000-of-00001",
        "mean.npy": tmp_path / "mean.npy",
    }
    files = {name: open(path, "rb") for name, path in paths.items()}  # noqa: SIM115
    yield files
    for file in files.values():
        file.close()


@pytest.fixture
def client(local_stack: RunningStack) -> V07Client:
    return V07Client(api_key=local_stack.api_key, host=local_stack.host)


def sent_form_names(client: V07Client) -> list[str]:
    body = client.last_request.body if client.last_request is not None else b""
    assert isinstance(body, bytes)
    return [line.split(b'name="', 1)[1].split(b'"', 1)[0].decode() for line in body.split(b"\r\n") if b'name="' in line]


def test_flattening_matches_django_rest_keys() -> None:
    flat = flatten_for_multipart({"metadata": {"author": "me"}, "preprocessing": PREPROCESSING, "name": "n"})
    assert flat["metadata.author"] == "me"
    assert flat["preprocessing.inputs[0]tensor_name"] == PREPROCESSING["inputs"][0]["tensor_name"]
    assert flat["preprocessing.inputs[0]image.dimension_order"] == "NHWC"
    assert flat["preprocessing.batched_output"] is True
    assert flat["name"] == "n"


def test_v07_client_create_list_retrieve_update_delete_and_task_status(
    client: V07Client, model_files: dict[str, IO[bytes]]
) -> None:
    # Given: a network created as the seed's sample creates it (multipart, flattened fields, files)
    network = client.create_network(
        name="My first network",
        description="A neural network trained on some data",
        metadata=METADATA,
        framework="tensorflow-1.x",
        preprocessing=PREPROCESSING,
        postprocessings=POSTPROCESSINGS,
        files=model_files,
    )
    names = sent_form_names(client)
    assert "preprocessing.inputs[0]image.dimension_order" in names and "metadata.author" in names
    assert {"saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy"} <= set(names)
    assert b'preprocessing.batched_output"\r\n\r\nTrue\r\n' in client.last_request.body  # type: ignore[union-attr]
    assert isinstance(network["id"], int) and isinstance(network["task_id"], int)
    assert network["name"] == "My first network"
    assert network["metadata"] == {"author": "me", "project": "Go to mars", "epochs": "12"}
    assert network["preprocessing"] == PREPROCESSING
    assert network["postprocessings"][0]["tensors_output"]["tensors"] == ["softmax:0"]
    assert network["framework"] == "tensorflow-1.x" and network["update_date"].endswith("Z")
    assert sorted(network["files"]) == sorted(model_files)

    # Given: two more, so that a list of one per page takes several pages
    others = [
        client.create_network(name=f"network {index}", preprocessing=PREPROCESSING, files=model_files)
        for index in range(2)
    ]
    created = [network["id"], *(other["id"] for other in others)]

    # When: the list is walked one network per page, following `next` to the end
    pages = list(client.list_pages(client.network_uri(), {"offset": 0, "limit": 1}))
    listed = [item["id"] for page in pages for item in page["results"]]
    # Then
    assert len(pages) == pages[0]["count"] >= 3
    assert all(len(page["results"]) == 1 for page in pages)
    assert all(page["next"] is None or page["next"].startswith("http") for page in pages)
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    assert len(listed) == len(set(listed)) and set(created) <= set(listed)
    assert [item["id"] for item in client.list_networks()] == listed
    assert all(isinstance(item["id"], str) for item in client.list_networks(public=True))

    # When / Then: retrieve by integer id
    retrieved = client.retrieve_network(network["id"])
    assert {key: retrieved[key] for key in network} == network

    # When / Then: update the mutable fields; an immutable one is refused with its name
    updated = client.update_network(network["id"], name="new name", description="new description", metadata={})
    assert (updated["name"], updated["description"], updated["metadata"]) == ("new name", "new description", {})
    assert updated["preprocessing"] == PREPROCESSING and updated["update_date"] > network["update_date"]
    assert client.retrieve_network(network["id"])["name"] == "new name"
    with pytest.raises(ClientError) as refused:
        client.update_network(network["id"], preprocessing=PREPROCESSING)
    assert refused.value.status_code == 400 and "preprocessing" in refused.value.response.json()["error"]

    # When / Then: the deploy tasks, one by one and listed by ids
    task = client.retrieve_task(network["task_id"])
    assert task["id"] == network["task_id"] and task["status"] in ("pending", "success", "error")
    task_ids = [network["task_id"], *(other["task_id"] for other in others)]
    assert [item["id"] for item in client.list_tasks(task_ids, limit=2)] == task_ids

    # When / Then: delete answers 204 with no body, and the network is gone
    for network_id in created:
        client.delete_network(network_id)
    with pytest.raises(ClientError) as gone:
        client.retrieve_network(network["id"])
    assert gone.value.status_code == 404
    assert not set(created) & {item["id"] for item in client.list_networks()}


def test_v07_client_json_create_without_files_gets_a_presigned_upload(client: V07Client) -> None:
    network = client.create_network(name="large network", metadata={"size": "large"})
    assert isinstance(network["id"], int) and network["upload"]["url"].startswith("http")
    assert client.last_request is not None and client.last_request.headers["Content-Type"] == "application/json"
    client.delete_network(network["id"])


def test_v07_client_errors_are_json_sentences_with_4xx(local_stack: RunningStack) -> None:
    stranger = V07Client(api_key="tg_not_a_known_key_0000000000", host=local_stack.host)
    with pytest.raises(ClientError) as unknown_key:
        list(stranger.list_networks())
    assert unknown_key.value.status_code == 401
    assert unknown_key.value.response.headers["Content-Type"] == "application/json"
    client = V07Client(api_key=local_stack.api_key, host=local_stack.host)
    with pytest.raises(ClientError) as too_large:
        client.create_network(name="huge", files={"saved_model.pb": io.BytesIO(b"\0" * (7 * 1024 * 1024))})
    assert too_large.value.status_code == 413 and "presigned" in too_large.value.response.json()["error"]


def test_local_stack_prints_url_and_key(local_stack: RunningStack) -> None:
    printed: Any = local_stack.printed()
    assert f"API key: {local_stack.api_key}" in printed and local_stack.url.endswith("/v0.7")
