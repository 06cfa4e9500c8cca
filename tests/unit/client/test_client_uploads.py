"""Create from a path: multipart when the body fits, else JSON + the presigned POST; bodies streamed from disk."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from requests_toolbelt.multipart.decoder import MultipartDecoder
from tensorgate_client import ApiError, Client
from tensorgate_client.uploads import MULTIPART_BODY_LIMIT, UnusableModelPath

from tests.unit.client.fakes import Answer, Received, fake_service, network_body

KEY = "tg_unit_key_0123456789"


def parts(received: Received) -> list[tuple[str, bytes]]:
    """(form name, content) of each part, in the order sent."""
    decoded = MultipartDecoder(received.body, received.headers["Content-Type"])
    names = []
    for part in decoded.parts:
        disposition = part.headers[b"Content-Disposition"].decode()
        names.append((disposition.split('name="', 1)[1].split('"', 1)[0], part.content))
    return names


def saved_model_folder(root: Path, weights: int = 1000) -> Path:
    folder = root / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph" * 20)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"w" * weights)
    (folder / "mean.npy").write_bytes(b"mean")
    (folder / ".DS_Store").write_bytes(b"hidden")
    return folder


def service_route(upload_status: int = 204):
    def route(received: Received) -> Answer:
        if received.path.startswith("/v0.7/networks") and received.method == "POST":
            if received.headers["Content-Type"].startswith("application/json"):
                body = network_body(7) | {
                    "upload": {
                        "url": f"http://{received.headers['Host']}/bucket",
                        "fields": {
                            "key": "uploads/acct/7/archive/model.zip",
                            "policy": "p0l1cy",
                            "x-amz-signature": "s",
                        },
                        "key": "uploads/acct/7/archive/model.zip",
                        "max_bytes": 10**9,
                        "expires_in": 900,
                    }
                }
                return Answer(201, body)
            return Answer(201, network_body(7))
        if received.path == "/bucket":
            if upload_status >= 400:
                xml = "<Error><Code>AccessDenied</Code><Message>Policy expired</Message></Error>"
                return Answer(upload_status, xml, {"Content-Type": "application/xml"})
            return Answer(upload_status)
        if received.method == "DELETE":
            return Answer(204)
        return Answer(404, {"error": f"No route for {received.method} {received.path}."})

    return route


def test_create_small_folder_sends_one_multipart_request_with_fields_then_files(tmp_path: Path) -> None:
    folder = saved_model_folder(tmp_path)
    with fake_service(service_route()) as service:
        client = Client(service.url, KEY)
        network = client.networks.create(
            folder, name="demo", metadata={"author": "me"}, preprocessing={"inputs": [{"tensor_name": "image"}]}
        )

    assert network.id == 7 and network.upload is None
    [request] = service.received
    assert request.headers["X-API-KEY"] == KEY
    sent = dict(parts(request))
    assert list(sent)[:3] == ["name", "metadata", "preprocessing"]
    assert json.loads(sent["metadata"]) == {"author": "me"} and "framework" not in sent
    assert sent["variables/variables.data-00000-of-00001"] == b"w" * 1000
    assert sorted(name for name in sent if "." in name) == [
        "mean.npy",
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]


def test_create_onnx_file_declares_its_framework(tmp_path: Path) -> None:
    model = tmp_path / "my detector.onnx"
    model.write_bytes(b"onnx-bytes")
    with fake_service(service_route()) as service:
        Client(service.url, KEY).networks.create(model, name="detector")

    sent = dict(parts(service.received[0]))
    assert sent["framework"] == b"onnx" and sent["my_detector.onnx"] == b"onnx-bytes"


def test_create_torchscript_file_with_input_spec_declares_pytorch(tmp_path: Path) -> None:
    model = tmp_path / "resnet18.pt"
    model.write_bytes(b"torchscript-zip")
    spec = [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 224, 224]}]
    with fake_service(service_route()) as service:
        Client(service.url, KEY).networks.create(model, name="resnet18", input_spec=spec)

    sent = dict(parts(service.received[0]))
    assert sent["framework"] == b"pytorch" and sent["resnet18.pt"] == b"torchscript-zip"
    assert json.loads(sent["input_spec"]) == spec


def test_create_caffe_folder_declares_the_v07_caffe_framework(tmp_path: Path) -> None:
    folder = tmp_path / "googlenet"
    folder.mkdir()
    for name, content in [("deploy.prototxt", b"layer {}"), ("snapshot.caffemodel", b"w"), ("mean.binaryproto", b"m")]:
        (folder / name).write_bytes(content)
    with fake_service(service_route()) as service:
        Client(service.url, KEY).networks.create(folder, name="googlenet")

    sent = dict(parts(service.received[0]))
    assert sent["framework"] == b"nv-caffe-0.x-mod" and sent["snapshot.caffemodel"] == b"w"


def test_create_over_the_multipart_limit_zips_and_posts_to_the_presigned_url_file_last(tmp_path: Path) -> None:
    folder = saved_model_folder(tmp_path, weights=50_000)
    events: list[object] = []
    with fake_service(service_route()) as service:
        client = Client(service.url, KEY)
        network = client.networks.create(
            folder,
            name="big",
            multipart_limit=10_000,
            progress=lambda sent, total: events.append((sent, total)),
            on_stage=events.append,
        )

    create, upload = service.received
    assert create.json() == {"name": "big", "archive_name": "model.zip"}
    assert upload.path == "/bucket" and "X-API-KEY" not in upload.headers
    sent = parts(upload)
    assert [name for name, _ in sent] == ["key", "policy", "x-amz-signature", "file"]
    with zipfile.ZipFile(io.BytesIO(sent[-1][1])) as archive:
        assert sorted(archive.namelist()) == [
            "mean.npy",
            "saved_model.pb",
            "variables/variables.data-00000-of-00001",
            "variables/variables.index",
        ]
        assert archive.read("variables/variables.data-00000-of-00001") == b"w" * 50_000
    assert network.id == 7
    # First the files' bytes zipped, then the upload's bytes sent, each stage announced
    uploading = events.index("uploading model.zip")
    assert events[0] == "zipping 4 files" and events[uploading - 1] == (50_000 + 100 + 5 + 4,) * 2
    sent = events[uploading + 1 :]
    total = int(upload.headers["Content-Length"])
    assert sent[-1] == (total, total) and sent == sorted(sent)


def test_create_from_an_archive_signs_its_own_name_and_sends_it_unchanged(tmp_path: Path) -> None:
    archive = tmp_path / "resnet.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        onnx_file = tmp_path / "resnet.onnx"
        onnx_file.write_bytes(b"onnx")
        tar.add(onnx_file, "resnet/resnet.onnx")
    with fake_service(service_route()) as service:
        Client(service.url, KEY).networks.create(archive, name="resnet")

    create, upload = service.received
    assert create.json() == {"name": "resnet", "framework": "onnx", "archive_name": "resnet.tar.gz"}
    assert parts(upload)[-1][1] == archive.read_bytes()


def test_create_folder_with_nested_assets_goes_as_an_archive_even_when_small(tmp_path: Path) -> None:
    folder = saved_model_folder(tmp_path)
    (folder / "assets").mkdir()
    (folder / "assets" / "vocab.txt").write_text("a b c")
    with fake_service(service_route()) as service:
        Client(service.url, KEY).networks.create(folder, name="with assets")

    assert service.received[0].json()["archive_name"] == "model.zip"
    with zipfile.ZipFile(io.BytesIO(parts(service.received[1])[-1][1])) as archive:
        assert "assets/vocab.txt" in archive.namelist()


def test_create_whose_upload_is_refused_deletes_the_network_and_says_why(tmp_path: Path) -> None:
    folder = saved_model_folder(tmp_path)
    with fake_service(service_route(upload_status=403)) as service:
        client = Client(service.url, KEY)
        with pytest.raises(ApiError, match="^The archive upload was refused: Policy expired.$"):
            client.networks.create(folder, name="refused", multipart_limit=100)

    assert [(r.method, r.path) for r in service.received][-1] == ("DELETE", "/v0.7/networks/7/")


def test_create_multipart_refused_with_429_is_sent_again_whole(tmp_path: Path) -> None:
    folder = saved_model_folder(tmp_path, weights=200_000)
    answers = iter([Answer(429, {"error": "Slow down."}, {"Retry-After": "0"}), Answer(201, network_body(7))])
    with fake_service(lambda received: next(answers)) as service:
        Client(service.url, KEY).networks.create(folder, name="again")

    first, second = service.received
    assert len(first.body) == len(second.body) == int(second.headers["Content-Length"]) > 200_000
    assert dict(parts(second))["variables/variables.data-00000-of-00001"] == b"w" * 200_000


def test_create_default_limit_keeps_the_body_under_the_gateways_multipart_limit() -> None:
    assert MULTIPART_BODY_LIMIT == 4_718_592


def test_create_from_a_missing_or_empty_path_is_refused_before_any_request(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    client = Client("http://127.0.0.1:9", KEY)
    with pytest.raises(UnusableModelPath, match="does not exist"):
        client.networks.create(tmp_path / "nothing.onnx", name="x")
    with pytest.raises(UnusableModelPath, match="empty"):
        client.networks.create(empty, name="x")


def test_create_command_streams_a_large_archive_without_holding_it(tmp_path: Path) -> None:
    """256 MiB through the command in its own process: its peak RSS stays far below the archive's size."""
    archive = tmp_path / "big.tar.gz"
    with open(archive, "wb") as handle:
        handle.truncate(256 * 1024 * 1024)  # sparse: the disk is not what is measured
    command = [str(Path(sys.executable).parent / "tensorgate"), "networks", "create", str(archive), "--no-wait"]
    measure = (
        "import resource, subprocess, sys; "
        "status = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
        "print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    with fake_service(service_route(), keep_bodies=False) as service:
        env = os.environ | {"TENSORGATE_API_URL": service.url, "TENSORGATE_API_KEY": KEY}
        done = subprocess.run([sys.executable, "-c", measure, *command], env=env, capture_output=True, text=True)
        uploaded = service.received[-1]

    status, peak_kib = map(int, done.stdout.split())
    assert status == 0, done.stderr
    assert int(uploaded.headers["Content-Length"]) > 256 * 1024 * 1024
    assert peak_kib * 1024 < 150 * 1000 * 1000, f"peak RSS {peak_kib} KiB"


def test_generated_archive_stores_large_files_and_deflates_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorgate_client import uploads

    monkeypatch.setattr(uploads, "STORE_ABOVE_BYTES", 10_000)
    folder = saved_model_folder(tmp_path, weights=20_000)
    seen: list[tuple[int, int]] = []

    with uploads.as_archive(uploads.collect(folder), lambda done, total: seen.append((done, total))) as archive:
        with zipfile.ZipFile(archive) as opened:
            types = {info.filename: info.compress_type for info in opened.infolist()}
            assert opened.read("variables/variables.data-00000-of-00001") == b"w" * 20_000
        kept = archive
    assert not kept.exists()  # the temporary archive is removed afterwards
    assert types["variables/variables.data-00000-of-00001"] == zipfile.ZIP_STORED
    assert types["saved_model.pb"] == zipfile.ZIP_DEFLATED
    assert seen[-1] == (20_000 + 100 + 5 + 4, 20_000 + 100 + 5 + 4)
