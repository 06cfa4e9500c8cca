"""The command against a mocked service: tables, --json, exit codes, the service's sentence and no traceback."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path

import pytest
import responses
from tensorgate_client import Client, config
from tensorgate_client.cli import State, run

from tests.unit.client.fakes import Answer, Received, fake_service, network_body, task_body

HOST = "http://tensorgate.test"
URL = f"{HOST}/v0.7"
KEY = "tg_unit_key_0123456789"


@pytest.fixture(autouse=True)
def configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(config.CONFIG_FILE_VARIABLE, str(tmp_path / "config"))
    monkeypatch.setenv(config.URL_VARIABLE, HOST)
    monkeypatch.setenv(config.KEY_VARIABLE, KEY)
    monkeypatch.delenv(config.PROFILE_VARIABLE, raising=False)
    return tmp_path


@responses.activate
def test_cli_networks_list_prints_a_table_and_json_with_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    page = {"count": 2, "next": None, "previous": None, "results": [network_body(1), network_body(2, "ready")]}
    responses.get(f"{URL}/networks/", json=page)

    assert run(["networks", "list"]) == 0
    table = capsys.readouterr().out
    assert "ready" in table and "pending" in table and "2 of 2" in table

    assert run(["networks", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 2


@responses.activate
def test_cli_service_error_prints_its_sentence_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    responses.get(f"{URL}/networks/42/", status=404, json={"error": "Network 42 was not found."})

    assert run(["networks", "get", "42"]) == 1
    printed = capsys.readouterr()
    assert printed.err.strip() == "Error: Network 42 was not found."
    assert "Traceback" not in printed.err and printed.out == ""


@responses.activate
def test_cli_unknown_key_exits_1_with_the_401_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    responses.get(f"{URL}/networks/", status=401, json={"error": "The API key is missing or unknown."})

    assert run(["whoami"]) == 1
    assert "The API key is missing or unknown." in capsys.readouterr().err


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], configured: Path) -> None:
    assert run(["networks", "frobnicate"]) == 2
    assert run(["networks", "create", str(configured / "missing.onnx")]) == 2
    assert run(["networks", "update", "3"]) == 2
    assert run(["networks", "create", str(configured), "--metadata", "{not json"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_no_configuration_exits_2_saying_how_to_configure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(config.URL_VARIABLE)

    assert run(["networks", "list"]) == 2
    assert "tensorgate login" in capsys.readouterr().err


@responses.activate
def test_cli_task_wait_past_timeout_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    responses.get(f"{URL}/tasks/5/", json=task_body(5))

    assert run(["tasks", "wait", "5", "--timeout", "0.2"]) == 3
    assert "Task 5 had not ended after 0.2 s." in capsys.readouterr().err


@responses.activate
def test_cli_task_ending_in_error_exits_1_and_json_lines_for_several(capsys: pytest.CaptureFixture[str]) -> None:
    tasks = [task_body(5, "success", data={"tensors": []}), task_body(6, "error", error="Image unreadable.")]
    responses.get(f"{URL}/tasks/", json={"count": 2, "next": None, "previous": None, "results": tasks})

    assert run(["tasks", "get", "5", "6", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(task["id"], task["status"]) for task in lines] == [(5, "success"), (6, "error")]

    responses.get(f"{URL}/tasks/6/", json=tasks[1])
    assert run(["tasks", "wait", "6"]) == 1
    assert "task 6 ended in error: Image unreadable." in capsys.readouterr().err


@responses.activate
def test_cli_login_checks_the_key_writes_the_profile_and_whoami_masks_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    monkeypatch.delenv(config.URL_VARIABLE)
    monkeypatch.delenv(config.KEY_VARIABLE)
    responses.get(f"{URL}/networks/", json={"count": 3, "next": None, "previous": None, "results": []})

    assert run(["login", "--api-url", HOST, "--api-key", KEY]) == 0
    assert f"api_key = {KEY}" in (configured / "config").read_text()
    capsys.readouterr()

    assert run(["whoami", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["api_url"] == URL and shown["api_key"] == "tg_u**************6789" and shown["networks"] == 3
    assert KEY not in json.dumps(shown)


@responses.activate
def test_cli_login_with_a_refused_key_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    responses.get(f"{URL}/networks/", status=401, json={"error": "The API key is missing or unknown."})

    assert run(["login", "--api-url", HOST, "--api-key", "tg_wrong_key_123456789"]) == 1
    assert not (configured / "config").exists()


@responses.activate
def test_cli_networks_wait_prints_the_parity_table_and_exits_1_when_the_deploy_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = {
        "parity": {
            "checked": True,
            "passed": True,
            "outputs": [
                {
                    "name": "probabilities",
                    "shape": [1, 4],
                    "max_abs": 2.5e-7,
                    "max_rel": 1e-6,
                    "allowed": 1e-4,
                    "passed": True,
                }
            ],
        }
    }
    responses.get(f"{URL}/networks/3/", json=network_body(3, "ready", conversion=report))
    assert run(["networks", "wait", "3"]) == 0
    out = capsys.readouterr().out
    assert "parity: passed" in out and "probabilities" in out and "2.5e-07" in out

    responses.replace(responses.GET, f"{URL}/networks/3/", json=network_body(3, "error", error="No model file."))
    assert run(["networks", "wait", "3"]) == 1
    assert "The deploy of network 3 failed: No model file." in capsys.readouterr().err


@responses.activate
def test_cli_infer_runs_every_input_and_prints_labels_boxes_and_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.jpg", "b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"picture")
    ids = iter(range(100, 200))
    responses.add_callback(
        responses.POST,
        f"{URL}/networks/3/inference",
        callback=lambda request: (200, {}, json.dumps({"task_id": next(ids)})),
    )
    labels = {"tensors": [], "outputs": [{"label": "cat", "score": 0.9}, {"label": "dog", "score": 0.1}]}
    boxes = {"tensors": [], "outputs": [{"box": [1, 2, 30, 40], "label": "disc", "score": 0.75}]}
    responses.get(f"{URL}/tasks/100/", json=task_body(100, "success", data=labels))
    responses.get(f"{URL}/tasks/101/", json=task_body(101, "success", data=boxes))

    assert run(["infer", "3", str(tmp_path), "--concurrency", "1"]) == 0
    out = capsys.readouterr().out
    assert "cat 0.900" in out and "disc 0.750 [1, 2, 30, 40]" in out and "notes.txt" not in out

    responses.get(f"{URL}/tasks/102/", json=task_body(102, "success", data=labels))
    responses.get(f"{URL}/tasks/103/", json=task_body(103, "error", error="Image unreadable."))
    assert run(["infer", "3", str(tmp_path / "*.*g"), "--json", "--concurrency", "1"]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["status"] for line in lines] == ["success", "error"]
    assert "1 of 2 inferences failed" in captured.err


def test_cli_infer_input_matching_nothing_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["infer", "3", str(tmp_path / "*.jpg")]) == 2
    assert "no file, folder, URL or pattern" in capsys.readouterr().err


@responses.activate
def test_cli_infer_draw_keeps_pictures_of_the_same_name_apart(tmp_path: Path) -> None:
    from PIL import Image

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (200, 150), (128, 128, 128)).save(tmp_path / folder / "x.png")
    ids = iter(range(300, 310))
    responses.add_callback(
        responses.POST,
        f"{URL}/networks/3/inference",
        callback=lambda request: (200, {}, json.dumps({"task_id": next(ids)})),
    )
    boxes = {"tensors": [], "outputs": [{"box": [20, 10, 150, 120], "label": "disc", "score": 0.75}]}
    for task_id in (300, 301):
        responses.get(f"{URL}/tasks/{task_id}/", json=task_body(task_id, "success", data=boxes))

    assert run(["infer", "3", str(tmp_path / "a"), str(tmp_path / "b"), "--draw", str(tmp_path / "out"), "-q"]) == 0

    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["000-x.png", "001-x.png"]
    with Image.open(tmp_path / "out" / "000-x.png") as drawn:
        assert drawn.getpixel((20, 60)) != (128, 128, 128) and drawn.getpixel((80, 80)) == (128, 128, 128)


@responses.activate
def test_cli_infer_url_input_is_sent_as_json_with_the_detection_options(capsys: pytest.CaptureFixture[str]) -> None:
    responses.post(f"{URL}/networks/3/inference", json={"task_id": 400})
    responses.get(f"{URL}/tasks/400/", json=task_body(400, "success", data={"tensors": [], "outputs": []}))

    assert run(["infer", "3", "https://example.com/cat.jpg?size=big", "--threshold", "0.7", "--max-objects", "2"]) == 0

    assert json.loads(responses.calls[0].request.body) == {
        "inputs": [{"image": {"source": "https://example.com/cat.jpg?size=big"}}],
        "bounding_box_threshold": 0.7,
        "max_objects": 2,
    }
    assert "no objects found" in capsys.readouterr().out


@responses.activate
def test_cli_networks_list_all_follows_the_next_links(capsys: pytest.CaptureFixture[str]) -> None:
    first = {"count": 3, "next": f"{URL}/networks/?offset=2&limit=2", "previous": None}
    responses.get(f"{URL}/networks/?offset=0&limit=100", json=first | {"results": [network_body(1), network_body(2)]})
    responses.get(
        f"{URL}/networks/?offset=2&limit=2",
        json={"count": 3, "next": None, "previous": f"{URL}/networks/?offset=0&limit=2", "results": [network_body(3)]},
    )

    assert run(["networks", "list", "--all", "--json"]) == 0

    listed = json.loads(capsys.readouterr().out)
    assert [network["id"] for network in listed["results"]] == [1, 2, 3] and listed["count"] == 3


def test_cli_create_sends_a_mean_file_given_as_a_path_and_names_it_in_the_preprocessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    from tests.unit.client.fakes import Answer, fake_service

    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "imagenet mean.npy").write_bytes(b"mean")
    with fake_service(lambda received: Answer(201, network_body(5))) as service:
        monkeypatch.setenv(config.URL_VARIABLE, service.url)
        code = run(
            ["networks", "create", str(model), "--tensor-name", "data", "--target-size", "224x224",
             "--mean-file", str(tmp_path / "stats" / "imagenet mean.npy"), "--no-wait", "-q"]
        )  # fmt: skip

    assert code == 0 and capsys.readouterr().out.strip() == "5"
    [request] = service.received
    parts = {
        part.headers[b"Content-Disposition"].decode().split('name="')[1].split('"')[0]: part.content
        for part in MultipartDecoder(request.body, request.headers["Content-Type"]).parts
    }
    assert parts["imagenet_mean.npy"] == b"mean" and parts["model.onnx"] == b"onnx" and parts["framework"] == b"onnx"
    image = json.loads(parts["preprocessing"])["inputs"][0]
    assert image == {"tensor_name": "data", "image": {"target_size": "224x224", "mean_file": "imagenet_mean.npy"}}


@responses.activate
def test_cli_an_answer_that_is_not_the_api_is_a_sentence_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    responses.get(f"{URL}/networks/", body="<html>a login page</html>", content_type="text/html")
    responses.get(f"{URL}/networks/7/", json={"something": "else"})

    assert run(["networks", "list"]) == 1
    assert "answered 200 with text/html that is not a Tensorgate NetworkPage; is the API URL right?" in (
        capsys.readouterr().err
    )
    assert run(["networks", "get", "7"]) == 1
    assert "application/json that is not a Tensorgate Network" in capsys.readouterr().err


def test_cli_login_asks_for_what_is_not_given(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        config.CONFIG_FILE_VARIABLE: str(tmp_path / "asked"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tensorgate"), "login", "--no-verify"],
        input="http://127.0.0.1:3000\ntg_typed_key_0123456789\n",
        env=env,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal: the key is read from stdin
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert config.read_profile("default", tmp_path / "asked") == {
        "api_url": "http://127.0.0.1:3000/v0.7",
        "api_key": "tg_typed_key_0123456789",
    }
    assert "tg_typed_key_0123456789" not in done.stdout


def spec_body(spec_id: int = 7, current: int | None = None) -> dict[str, object]:
    labels = [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]
    return {
        "id": spec_id,
        "name": "pets",
        "description": "",
        "metadata": {},
        "outputs": [{"labels": {"roi": "NONE", "exclusive": False, "labels": labels}}],
        "current_version_id": current,
        "update_date": "2026-12-02T10:00:00Z",
    }


@responses.activate
def test_cli_specs_create_from_labels_sends_one_output_with_ids_in_order(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    responses.post(f"{URL}/recognition/specs/", status=201, json=spec_body())
    labels = configured / "labels.txt"
    labels.write_text("cat\n\ndog\n")

    assert run(["specs", "create", "pets", "--labels-file", str(labels), "--exclusive"]) == 0

    sent = json.loads(responses.calls[0].request.body)
    assert sent == {
        "name": "pets",
        "outputs": [
            {
                "labels": {
                    "roi": "NONE",
                    "exclusive": True,
                    "labels": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}],
                }
            }
        ],
    }
    shown = capsys.readouterr().out
    assert "classification, 2 labels: 0:cat, 1:dog" in shown and "none" in shown
    assert run(["specs", "create", "pets"]) == 2  # neither labels nor outputs


@responses.activate
def test_cli_specs_update_switches_or_clears_the_current_version() -> None:
    responses.patch(f"{URL}/recognition/specs/7/", json=spec_body(current=3))

    assert run(["specs", "update", "7", "--current-version", "3", "-q"]) == 0
    assert run(["specs", "update", "7", "--current-version", "none", "-q"]) == 0
    assert run(["specs", "update", "7", "--current-version", "latest"]) == 2

    assert [json.loads(call.request.body) for call in responses.calls] == [
        {"current_version_id": 3},
        {"current_version_id": None},
    ]


@responses.activate
def test_cli_versions_create_with_the_classification_shortcut_gives_every_label_the_threshold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    responses.get(f"{URL}/recognition/specs/7/", json=spec_body())
    version = {
        "id": 3,
        "spec_id": 7,
        "network_id": 1,
        "post_processings": [{"classification": {"output_tensor": "prob", "thresholds": [0.3, 0.3]}}],
        "spec_name": "pets",
        "network_name": "mobilenet",
        "update_date": "2026-12-02T10:00:00Z",
    }
    responses.post(f"{URL}/recognition/versions/", status=201, json=version)

    arguments = ["--spec", "7", "--network", "1", "--classification", "prob", "--threshold", "0.3"]
    assert run(["versions", "create", *arguments]) == 0

    assert json.loads(responses.calls[1].request.body) == {
        "spec_id": 7,
        "network_id": 1,
        "post_processings": [{"classification": {"output_tensor": "prob", "thresholds": [0.3, 0.3]}}],
    }
    assert "mobilenet" in capsys.readouterr().out


@responses.activate
def test_cli_infer_through_a_spec_prints_its_predicted_labels_and_sends_the_recognition_fields(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    picture = configured / "cat.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    responses.post(f"{URL}/recognition/specs/7/inference", json={"task_id": 11})
    predicted = [
        {"label_id": 0, "label_name": "cat", "score": 0.93, "threshold": 0.5},
        {"label_id": 1, "label_name": "dog", "score": 0.61, "threshold": 0.5},
    ]
    data = {"outputs": [{"labels": {"predicted": predicted, "discarded": []}}], "tensors": []}
    responses.get(f"{URL}/tasks/11/", json=task_body(11, "success") | {"data": data})

    assert run(["infer", "spec:7", str(picture), "--max-predictions", "2"]) == 0

    body = responses.calls[0].request.body
    assert b'name="max_predictions"\r\n\r\n2' in body and b"show_discarded" not in body
    shown = capsys.readouterr().out
    assert "cat 0.930" in shown and "dog 0.610" in shown
    assert run(["infer", "version:latest", str(picture)]) == 2


@responses.activate
def test_cli_connection_options_work_after_the_command_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.URL_VARIABLE)
    page = {"count": 0, "next": None, "previous": None, "results": []}
    responses.get("http://other.test/v0.7/networks/", json=page)

    assert run(["networks", "list", "--api-url", "http://other.test", "--api-key", "tg_other", "-q"]) == 0
    assert run(["--api-url", "http://other.test", "networks", "list", "-q"]) == 0

    assert [call.request.headers["X-API-KEY"] for call in responses.calls] == ["tg_other", KEY]


@responses.activate
def test_cli_endpoints_predict_follows_pending_tasks_past_the_budget(
    capsys: pytest.CaptureFixture[str], configured: Path
) -> None:
    picture = configured / "a.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    endpoint = {"id": 4, "name": "scenes", "network_id": 1, "status": "running"}
    responses.get(f"{URL}/endpoints/lookup", json=endpoint)
    responses.post(
        f"{URL}/endpoints/4/predict",
        status=202,
        json={"endpoint_id": 4, "status": "pending", "task_ids": [9], "predictions": [task_body(9)]},
    )
    data = {"outputs": [{"label": "sky", "score": 0.8}], "tensors": []}
    responses.get(f"{URL}/tasks/9/", json=task_body(9, "success") | {"data": data})

    assert run(["endpoints", "predict", "scenes", str(picture)]) == 0

    sent = json.loads(responses.calls[1].request.body)
    assert sent == {"features": ["iVBORw0KGgo="]}
    printed = capsys.readouterr()
    assert "sky 0.800" in printed.out and "following tasks 9" in printed.err


@responses.activate
def test_cli_jobs_submit_sends_one_target_and_the_inputs_and_refuses_two_targets(configured: Path) -> None:
    job = {"id": 30, "name": "shelves", "network_id": 1, "status": "pending", "total": 2}
    responses.post(f"{URL}/jobs/", status=201, json=job)
    urls = configured / "urls.txt"
    urls.write_text("https://example.com/a.jpg\n\nhttps://example.com/b.jpg\n")

    assert run(["jobs", "submit", "shelves", "--version", "3", "--urls-file", str(urls), "-q"]) == 0
    assert json.loads(responses.calls[0].request.body) == {
        "recognition_version_id": 3,
        "name": "shelves",
        "gpu_required": False,
        "inputs": {"urls": ["https://example.com/a.jpg", "https://example.com/b.jpg"]},
    }
    assert run(["jobs", "submit", "shelves", "--network", "1", "--endpoint", "2", "--prefix", "s3://b/p/"]) == 2
    assert run(["jobs", "submit", "shelves", "--network", "1"]) == 2
    assert len(responses.calls) == 1


@responses.activate
def test_cli_jobs_submit_split_sends_the_part_as_the_input(configured: Path) -> None:
    responses.post(
        f"{URL}/jobs/", status=201, json={"id": 31, "name": "m", "network_id": 1, "status": "pending", "total": 2}
    )

    assert run(["jobs", "submit", "m", "--network", "1", "--split", "4", "7", "test", "-q"]) == 0
    sent = json.loads(responses.calls[0].request.body)
    assert sent["inputs"] == {"split": {"dataset_id": 4, "split_id": 7, "part": "test"}}
    assert run(["jobs", "submit", "m", "--network", "1", "--split", "4", "7", "test", "--prefix", "s3://b/p/"]) == 2
    assert len(responses.calls) == 1


@responses.activate
def test_cli_jobs_submit_archive_zips_a_folder_and_posts_it_to_the_upload_the_create_answers(configured: Path) -> None:
    upload = {
        "url": "https://uploads.example.test/",
        "fields": {"key": "job-uploads/dev/32/images.zip", "policy": "p"},
        "key": "job-uploads/dev/32/images.zip",
        "max_bytes": 10**6,
        "expires_in": 900,
    }
    job = {"id": 32, "name": "aisles", "network_id": 1, "status": "pending", "total": 0, "upload": upload}
    responses.post(f"{URL}/jobs/", status=201, json=job)
    responses.post(upload["url"], status=204)
    folder = configured / "aisles"
    (folder / "aisle-1").mkdir(parents=True)
    (folder / "aisle-1" / "b.jpg").write_bytes(b"jpeg b")
    (folder / "a.png").write_bytes(b"png a")
    (folder / ".DS_Store").write_bytes(b"clutter")

    assert run(["jobs", "submit", "aisles", "--network", "1", "--archive", str(folder), "-q"]) == 0
    assert json.loads(responses.calls[0].request.body)["inputs"] == {"archive": {"name": "images.zip"}}
    posted = responses.calls[1].request
    body = posted.body.read() if hasattr(posted.body, "read") else bytes(posted.body)
    assert b'name="policy"' in body and b'filename="images.zip"' in body
    archive = zipfile.ZipFile(io.BytesIO(body[body.index(b"PK\x03\x04") :]))
    assert sorted(archive.namelist()) == ["a.png", "aisle-1/b.jpg"]
    assert run(["jobs", "submit", "aisles", "--network", "1", "--archive", str(folder), "--prefix", "s3://b/p/"]) == 2


@responses.activate
def test_cli_jobs_list_sends_the_search_and_status_and_prints_the_progress(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {"id": 33, "name": "aisles", "network_id": 1, "status": "running", "total": 300, "done": 120, "author": "me"}
    responses.get(f"{URL}/jobs/", json={"count": 1, "next": None, "previous": None, "results": [job]})

    assert run(["jobs", "list", "--search", "aisle", "--status", "running"]) == 0
    assert "search=aisle" in responses.calls[0].request.url and "status=running" in responses.calls[0].request.url
    printed = capsys.readouterr().out
    assert "aisles" in printed and "120" in printed and "300" in printed and "1 of 1" in printed


@responses.activate
def test_cli_datasets_evaluate_through_a_spec_shows_the_detection_figures(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses.get(f"{URL}/datasets/4/", json={"id": 4, "name": "orchard", "kind": "detection", "task_id": 1})
    evaluation = {"id": 9, "dataset_id": 4, "split_id": 7, "part": "test", "kind": "detection", "network_id": 2}
    responses.post(f"{URL}/datasets/4/splits/7/evaluations", status=201, json=evaluation | {"task_id": 5})
    metrics = {
        "items": 6,
        "map_50": 0.6,
        "map_50_95": 0.5,
        "per_class": {"apple": {"ap_50": 0.802, "ap_50_95": 0.802, "ground_truths": 5}},
    }
    responses.get(
        f"{URL}/datasets/4/splits/7/evaluations/9/metrics",
        json=evaluation | {"task_id": 5, "status": "ready", "metrics": metrics, "recognition_spec_id": 3},
    )

    assert run(["datasets", "evaluate", "4", "7", "--spec", "3"]) == 0
    assert json.loads(responses.calls[1].request.body) == {"recognition_spec_id": 3, "part": "test"}
    printed = capsys.readouterr().out
    assert "mAP@0.5 0.6000" in printed and "mAP@0.5:0.95 0.5000" in printed and "0.802" in printed
    assert run(["datasets", "evaluate", "4", "7", "--spec", "3", "--network", "1"]) == 2


@responses.activate
def test_cli_datasets_cancel_posts_to_the_extraction_version_or_evaluation(configured: Path) -> None:
    responses.get(f"{URL}/datasets/4/", json={"id": 4, "name": "orchard", "status": "pending", "task_id": 1})
    responses.post(f"{URL}/datasets/4/cancel", json={"id": 4, "name": "orchard", "status": "cancelled", "task_id": 1})
    responses.post(f"{URL}/datasets/4/versions/small/cancel", json={"name": "small", "status": "cancelled"})
    evaluation = {"id": 9, "dataset_id": 4, "split_id": 7, "part": "test", "network_id": 2, "task_id": 5}
    responses.post(f"{URL}/datasets/4/splits/7/evaluations/9/cancel", json=evaluation | {"status": "cancelled"})

    assert run(["datasets", "cancel", "4", "-q"]) == 0
    assert run(["datasets", "cancel", "4", "--version", "small", "-q"]) == 0
    assert run(["datasets", "cancel", "4", "--evaluation", "7", "9", "-q"]) == 0
    posted = [call.request.url for call in responses.calls if call.request.method == "POST"]
    assert [url.removeprefix(URL) for url in posted] == [
        "/datasets/4/cancel",
        "/datasets/4/versions/small/cancel",
        "/datasets/4/splits/7/evaluations/9/cancel",
    ]
    assert run(["datasets", "cancel", "4", "--version", "small", "--evaluation", "7", "9"]) == 2


@responses.activate
def test_cli_jobs_watch_bar_counts_done_and_failed_items_on_a_terminal_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An archive job: no items counted while its images are listed, then 6, then the end with one failed
    states = [("pending", 0, 0, 0), ("running", 6, 2, 1), ("success", 6, 5, 1)]
    for status, total, done, failed in states:
        job = {"id": 5, "name": "aisles", "network_id": 1, "status": status, "total": total, "done": done}
        responses.get(f"{URL}/jobs/5/", json=job | {"failed": failed})
    # The waits poll without sleeping, so the test takes no time
    monkeypatch.setattr(State, "client", property(lambda state: Client(sleep=lambda seconds: None)))

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws on the captured stderr as on a terminal
    assert run(["jobs", "watch", "5"]) == 0
    watched = capsys.readouterr()
    assert "job 5" in watched.err and "items not counted yet" in watched.err
    assert "5 done, 1 failed of 6" in watched.err and "━" in watched.err
    assert "5 done, 1 failed, 0 cancelled of 6" in watched.out  # the job's table, on stdout

    monkeypatch.setenv("TTY_COMPATIBLE", "0")  # piped: the job as JSON, no bar (the mock now answers the end)
    assert run(["jobs", "watch", "5", "--json"]) == 0
    piped = capsys.readouterr()
    assert piped.err == "" and json.loads(piped.out)["done"] == 5


def test_cli_infer_runs_its_inputs_concurrently_up_to_the_concurrency_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(8):
        (tmp_path / f"{index}.png").write_bytes(b"picture")
    # Inference requests pass in groups of 4: only 4 in flight at once gets the 8 through
    together = threading.Barrier(4, timeout=20)
    in_flight, most, lock, ids = 0, 0, threading.Lock(), iter(range(100, 200))

    def route(received: Received) -> Answer:
        nonlocal in_flight, most
        if received.method == "GET":
            task_id = int(received.path.rstrip("/").rsplit("/", 1)[1])
            return Answer(200, task_body(task_id, "success", data={"tensors": [], "outputs": []}))
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return Answer(500, {"error": "The inferences did not arrive four at a time."})
        finally:
            with lock:
                in_flight -= 1
        with lock:
            return Answer(200, {"task_id": next(ids)})

    with fake_service(route) as service:
        monkeypatch.setenv(config.URL_VARIABLE, service.url)
        assert run(["infer", "3", str(tmp_path), "--concurrency", "4", "--json"]) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["input"]).name for line in lines] == [f"{index}.png" for index in range(8)]
    assert sorted(line["task_id"] for line in lines) == list(range(100, 108))
    assert most == 4


def test_cli_every_command_takes_json_and_quiet_and_explains_itself() -> None:
    import click
    from tensorgate_client.cli import cli

    def leaves(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += leaves(command, (*path, name))
            else:
                found.append(((*path, name), command))
        return found

    commands = leaves(cli)
    assert len(commands) >= 40  # login … tasks wait
    for path, command in commands:
        flags = {flag for parameter in command.params for flag in getattr(parameter, "opts", [])}
        assert {"--json", "-q"} <= flags, path
        assert command.help and command.help.strip()[0].isupper(), path
        assert run([*path, "--help"]) == 0, path


EXPIRED = "<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


def test_cli_jobs_download_writes_the_results_whole_or_says_why_not(
    configured: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = "".join(json.dumps({"index": i, "status": "success"}) + "\n" for i in range(3000))

    def route(received: Received) -> Answer:
        if received.path.startswith("/v0.7/jobs/"):
            job_id = int(received.path.split("/")[3])
            body = {"id": job_id, "name": "j", "network_id": 1, "status": "success", "total": 3000, "done": 3000}
            return Answer(200, body | {"results_url": f"{service.url}/results/{job_id}.jsonl?signature=s"})
        if received.path.startswith("/results/7."):
            return Answer(200, results, {"Content-Type": "application/x-ndjson"})
        return Answer(403, EXPIRED, {"Content-Type": "application/xml"})

    with fake_service(route) as service:
        monkeypatch.setenv(config.URL_VARIABLE, service.url)
        target = configured / "results.jsonl"
        assert run(["jobs", "download", "7", "-o", str(target), "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == {"id": 7, "file": str(target), "bytes": len(results)}
        assert target.read_text() == results
        # The signed URL gets no API key
        assert "X-API-KEY" not in service.received[-1].headers and "X-API-KEY" in service.received[-2].headers

        refused = configured / "refused.jsonl"
        assert run(["jobs", "download", "8", "-o", str(refused)]) == 1
        printed = capsys.readouterr()
        assert printed.err == "Error: The results of job 8 could not be read: Request has expired.\n"
        assert sorted(path.name for path in configured.iterdir()) == ["results.jsonl"]  # nothing half-written

        # A target that cannot be written is a usage error naming it (not the .part beside it)
        nowhere = configured / "missing" / "results.jsonl"
        assert run(["jobs", "download", "7", "-o", str(nowhere)]) == 2
        assert capsys.readouterr().err == f"Error: {nowhere}: No such file or directory.\n"
        assert service.received[-1].path == "/v0.7/jobs/7/"  # the job was read; its results were not fetched


@responses.activate
def test_cli_datasets_evaluate_plot_refused_by_storage_is_its_sentence(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluation = {"id": 9, "dataset_id": 4, "split_id": 7, "part": "test", "network_id": 2, "task_id": 5}
    responses.get(f"{URL}/datasets/4/", json={"id": 4, "name": "orchard", "task_id": 1})
    responses.post(f"{URL}/datasets/4/splits/7/evaluations", status=201, json=evaluation)
    plots = {"confusion_matrix": "https://storage.test/cm.png?s=1", "per_class": "https://storage.test/pc.png?s=1"}
    ready = evaluation | {"status": "ready", "metrics": {"items": 1, "accuracy": 1.0}, "plots": plots}
    responses.get(f"{URL}/datasets/4/splits/7/evaluations/9/metrics", json=ready)
    responses.get(plots["confusion_matrix"], body=b"\x89PNG picture")
    responses.get(plots["per_class"], status=403, body=EXPIRED, content_type="application/xml")

    assert run(["datasets", "evaluate", "4", "7", "--network", "2", "--plots", str(configured / "plots")]) == 1

    assert capsys.readouterr().err == "Error: The plot per_class could not be downloaded: Request has expired.\n"
    assert (configured / "plots" / "confusion_matrix.png").read_bytes() == b"\x89PNG picture"
    assert "X-API-KEY" not in responses.calls[-1].request.headers
