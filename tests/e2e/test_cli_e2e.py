"""The `tensorgate` command against the local stack: the README's steps, tables and --json, exit codes,
the upload bar on a terminal and not in a pipe, the presigned archive path, and boxes drawn on pictures."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from tests.e2e.conftest import REPO_ROOT, RunningStack
from tests.e2e.test_inference_e2e import demo_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
COMMAND = Path(sys.executable).parent / "tensorgate"
DEMO = Path("/tmp/tg-demo")
# The detector's two constant boxes (normalised xmin, ymin, xmax, ymax) and their class scores.
BOXES = [[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.2, 0.2]]
SCORES = [[0.9, 0.05], [0.1, 0.6]]
LABELS = ["disc", "corner"]
PICTURE_SIZE = (320, 240)
DEMO_POSTPROCESSINGS = '[{"tensors_output": {"tensors": ["probabilities"], "labels": ["sky", "sea", "sand", "grass"]}}]'


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def environment(stack: RunningStack, config_file: Path) -> dict[str, str]:
    return os.environ | {
        "TENSORGATE_API_URL": stack.host,
        "TENSORGATE_API_KEY": stack.api_key,
        "TENSORGATE_CONFIG_FILE": str(config_file),
        "COLUMNS": "160",
    }


@pytest.fixture(scope="module")
def tensorgate(local_stack_with_workers: RunningStack, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Runs the installed command with its output piped, configured by the environment for the stack."""
    env = environment(local_stack_with_workers, tmp_path_factory.mktemp("config") / "config")

    def run(*arguments: str, timeout: float = 300, extra_env: dict[str, str] | None = None) -> Ran:
        done = subprocess.run(
            [str(COMMAND), *arguments], capture_output=True, text=True, timeout=timeout, env=env | (extra_env or {})
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


def readme_command_lines(stack: RunningStack) -> str:
    """The README's command-line block as a script for this stack: the created id captured with -q, then used."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## The command line\n.*?```bash\n(.*?)```", readme, re.DOTALL).group(1)  # type: ignore[union-attr]
    script = block.replace("http://127.0.0.1:3000", stack.host).replace("tg_demo_key_0123456789", stack.api_key)
    # The create command and its continuation lines (ending in a backslash) become ID=$(… -q).
    create = re.compile(r"^(tensorgate networks create (?:[^\n]*\\\n)*[^\n]*)$", re.MULTILINE)
    script = create.sub(lambda found: f"ID=$({found.group(1)} -q)", script, count=1)
    return re.sub(r"\b(networks (?:get|update|delete)|infer) 1\b", r'\1 "$ID"', script)


def detector_model(padding_bytes: int) -> bytes:
    """NHWC 32x32 image → constant `boxes` (N×2×4) and `scores` (N×2×2), plus an unused initializer as ballast."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 32, 32, 3])
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 2, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2, 2])
    initializers = [
        helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("expand_axes", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        numpy_helper.from_array(np.array(BOXES, dtype=np.float32), "box_values"),
        numpy_helper.from_array(np.array(SCORES, dtype=np.float32), "score_values"),
        numpy_helper.from_array(np.random.default_rng(3).random(padding_bytes // 4, dtype=np.float32), "ballast"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
            helper.make_node("Unsqueeze", ["zeros", "expand_axes"], ["zeros3"]),
            helper.make_node("Add", ["zeros3", "box_values"], ["boxes"]),
            helper.make_node("Add", ["zeros3", "score_values"], ["scores"]),
        ],
        "detector",
        [image],
        [boxes, scores],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


DETECTOR_FLAGS = (
    "--tensor-name", "image", "--target-size", "32x32", "--dimension-order", "NHWC", "--resize-type", "SQUASH",
    "--postprocessings",
    json.dumps([{"standard_output": {"boxes_tensor": "boxes", "scores_tensor": "scores", "labels": LABELS,
                                     "bounding_box_threshold": 0.5}}]),
)  # fmt: skip


@pytest.fixture(scope="module")
def large_detector(tensorgate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    """A 6 MB ONNX detector: over the multipart limit, so it goes by JSON create and the presigned archive."""
    model = tmp_path_factory.mktemp("detector") / "detector.onnx"
    model.write_bytes(detector_model(6 * 1024 * 1024))
    created = tensorgate("networks", "create", str(model), "--name", "big detector", *DETECTOR_FLAGS, "--json")
    assert created.code == 0, created.err
    network = created.json()
    assert isinstance(network, dict)
    yield network
    tensorgate("networks", "delete", str(network["id"]))


def test_cli_readme_command_line_block_runs_as_written(local_stack_with_workers: RunningStack, tmp_path: Path) -> None:
    script = readme_command_lines(local_stack_with_workers)
    assert script.count('"$ID"') == 4 and "ID=$(tensorgate networks create" in script, script

    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + '\necho "id=$ID"'],
        cwd=REPO_ROOT,
        env=os.environ | {"TENSORGATE_CONFIG_FILE": str(tmp_path / "config"), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert ran.returncode == 0, ran.stdout + ran.stderr
    network_id = re.search(r"^id=(\d+)$", ran.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert re.search(r"(sky|sea|sand|grass) 0\.\d{3}", ran.stdout)
    assert "new description" in ran.stdout and f"Deleted network {network_id}." in ran.stdout
    assert "Traceback" not in ran.stderr


def test_cli_readme_steps_create_list_get_infer_update_delete(tensorgate) -> None:  # type: ignore[no-untyped-def]
    demo_files(DEMO)  # the demo SavedModel the README makes with examples/make_demo_model.py
    # Create: flags for the preprocessing, JSON for the postprocessing; waits for the deploy, then the parity table
    created = tensorgate(
        "networks", "create", str(DEMO), "--name", "my new network", "--description", "trained with more images",
        "--metadata", '{"author": "me", "project": "Go to mars"}',
        "--tensor-name", "image", "--dimension-order", "NHWC", "--target-size", "64x64", "--mean-file", "mean.npy",
        "--pixel-scaling", "1.0", "--postprocessings", DEMO_POSTPROCESSINGS,
    )  # fmt: skip
    assert created.code == 0, created.err
    network_id = re.search(r"Created network (\d+) \(deploy task (\d+)\)", created.err).group(1)  # type: ignore[union-attr]
    assert "parity: passed" in created.out and "probabilities" in created.out and "max abs diff" in created.out
    assert re.search(r"status\s+ready", created.out)

    listed = tensorgate("networks", "list", "--limit", "100")
    assert listed.code == 0 and "my new network" in listed.out
    page = tensorgate("networks", "list", "--limit", "100", "--json").json()
    assert any(item["id"] == int(network_id) for item in page["results"])  # type: ignore[index]

    got = tensorgate("networks", "get", network_id, "--json").json()
    assert got["status"] == "ready" and got["metadata"] == {"author": "me", "project": "Go to mars"}  # type: ignore[index]
    assert got["conversion"]["parity"]["passed"] is True  # type: ignore[index]
    table = tensorgate("networks", "get", network_id)
    assert "image float32 [batch, 64, 64, 3]" in table.out and "parity: passed" in table.out

    inferred = tensorgate("infer", network_id, str(DEMO / "example.jpg"))
    assert inferred.code == 0, inferred.err
    assert re.search(r"(sky|sea|sand|grass) 0\.\d{3}", inferred.out)
    [result] = tensorgate("infer", network_id, str(DEMO / "example.jpg"), "--json").json_lines()
    assert result["status"] == "success"
    scores = [output["score"] for output in result["data"]["outputs"]]  # type: ignore[index]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    probabilities = result["data"]["tensors"][0]["data"]  # type: ignore[index]
    assert abs(sum(probabilities) - 1.0) < 1e-4

    renamed = tensorgate("networks", "update", network_id, "--name", "new name", "--description", "new description")
    assert renamed.code == 0 and "new name" in renamed.out and "new description" in renamed.out

    deleted = tensorgate("networks", "delete", network_id)
    assert deleted.code == 0 and f"Deleted network {network_id}." in deleted.out
    gone = tensorgate("networks", "get", network_id)
    assert gone.code == 1 and gone.out == ""
    assert gone.err == f"Error: No network with id {network_id} exists in this account.\n"


def test_cli_large_model_goes_by_presigned_archive_and_deploys(large_detector: dict[str, object]) -> None:
    assert large_detector["status"] == "ready", large_detector
    assert large_detector["files"] == [] and large_detector["framework"] == "onnx"
    assert large_detector["conversion"]["format"] == "onnx"  # type: ignore[index]


def test_cli_infer_draw_writes_each_picture_with_its_boxes_where_expected(
    tensorgate, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for index in range(3):
        Image.new("RGB", PICTURE_SIZE, (128, 128, 128 + index)).save(pictures / f"grey{index}.png")
    drawn = tmp_path / "drawn"

    ran = tensorgate("infer", str(large_detector["id"]), str(pictures), "--draw", str(drawn), "--json")

    assert ran.code == 0, ran.err
    results = ran.json_lines()
    assert sorted(Path(str(r["input"])).name for r in results) == ["grey0.png", "grey1.png", "grey2.png"]
    for result in results:
        outputs = result["data"]["outputs"]  # type: ignore[index]
        assert [(o["label"], o["box"]) for o in outputs] == [("disc", [80, 60, 240, 180]), ("corner", [0, 0, 64, 48])]
        with Image.open(str(result["drawn"])) as picture:
            rgb = picture.convert("RGB")
            disc_colour, corner_colour = rgb.getpixel((80, 120)), rgb.getpixel((64, 30))
            # The outlines lie on the boxes' edges; inside and outside the picture is untouched.
            assert disc_colour == rgb.getpixel((239, 120)) == rgb.getpixel((160, 179)) != (128, 128, 128)
            assert corner_colour == rgb.getpixel((30, 47)) not in (disc_colour, (128, 128, 128))
            for inside_or_outside in ((160, 120), (30, 40), (300, 230), (100, 200)):
                assert rgb.getpixel(inside_or_outside)[:2] == (128, 128), inside_or_outside
    table = tensorgate("infer", str(large_detector["id"]), str(pictures / "grey0.png"))
    assert "disc 0.900 [80, 60, 240, 180]" in table.out and "corner 0.600 [0, 0, 64, 48]" in table.out
    # A request's threshold (a multipart text field) drops the corner's 0.6
    [stricter] = tensorgate(
        "infer", str(large_detector["id"]), str(pictures / "grey0.png"), "--threshold", "0.7", "--json"
    ).json_lines()
    assert [output["label"] for output in stricter["data"]["outputs"]] == ["disc"]  # type: ignore[index]


def test_cli_exit_codes_usage_2_service_error_1_timeout_3(
    tensorgate, local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "detector.onnx"
    model.write_bytes(detector_model(0))

    assert tensorgate("infer", "1").code == 2
    missing = tensorgate("networks", "get", "987654")
    assert missing.code == 1 and "987654" in missing.err
    refused = tensorgate("networks", "create", str(model), "--postprocessings", '[{"nothing": {}}]')
    assert refused.code == 1 and refused.err.startswith("Error: Invalid")
    wrong_key = tensorgate("whoami", extra_env={"TENSORGATE_API_KEY": "tg_not_a_key_0123456789"})
    assert wrong_key.code == 1 and "key" in wrong_key.err.lower()

    created = tensorgate("networks", "create", str(model), *DETECTOR_FLAGS, "--no-wait", "-q")
    assert created.code == 0 and created.out.strip().isdigit()
    deleted = tensorgate("networks", "delete", created.out.strip(), "--json")
    assert deleted.code == 0 and deleted.json() == {"id": int(created.out.strip()), "deleted": True}

    # A JSON create whose archive never comes stays pending: the waits run out.
    stuck = requests.post(
        f"{local_stack_with_workers.url}/networks/",
        headers={"X-API-KEY": local_stack_with_workers.api_key},
        json={"name": "never uploaded", "archive_name": "model.zip"},
        timeout=30,
    ).json()
    network_id = str(stuck["id"])
    timed_out = tensorgate("networks", "wait", network_id, "--timeout", "1")
    assert timed_out.code == 3 and "had not ended after 1 s" in timed_out.err
    task_timed_out = tensorgate("tasks", "wait", str(stuck["task_id"]), "--timeout", "1", "--json")
    assert task_timed_out.code == 3 and task_timed_out.json_lines()[0]["status"] == "pending"
    assert tensorgate("networks", "delete", network_id).code == 0


def test_cli_login_writes_a_profile_and_whoami_shows_the_masked_key(
    tensorgate, local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    profile = {"TENSORGATE_CONFIG_FILE": str(tmp_path / "config"), "TENSORGATE_API_URL": "", "TENSORGATE_API_KEY": ""}
    key = local_stack_with_workers.api_key
    logged = tensorgate("login", "--api-url", local_stack_with_workers.host, "--api-key", key, extra_env=profile)
    assert logged.code == 0, logged.err
    assert "Saved profile 'default'" in logged.out and key not in logged.out
    again = tensorgate(
        "login", "--api-url", local_stack_with_workers.host, "--api-key", key, "--json", extra_env=profile
    )
    assert (
        again.json()
        == {  # type: ignore[comparison-overlap]
            "profile": "default",
            "file": str(tmp_path / "config"),
            "api_url": local_stack_with_workers.url,
            "api_key": f"{key[:4]}{'*' * (len(key) - 8)}{key[-4:]}",
        }
    )

    shown = tensorgate("whoami", extra_env=profile)
    assert shown.code == 0 and key not in shown.out
    assert f"{key[:4]}" in shown.out and local_stack_with_workers.url in shown.out
    assert tensorgate("whoami", "--json", extra_env=profile).json()["api_key_from"].startswith("profile 'default'")  # type: ignore[index]


def read_terminal(command: list[str], env: dict[str, str], seconds: float = 120) -> tuple[int, str]:
    """Runs `command` with a pseudo-terminal as its stdout and stderr; everything it drew, and its status."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_cli_upload_bar_on_a_terminal_and_absent_when_piped(
    local_stack_with_workers: RunningStack, tensorgate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "detector.onnx"
    model.write_bytes(detector_model(2 * 1024 * 1024))
    env = environment(local_stack_with_workers, tmp_path / "config") | {"TERM": "xterm-256color"}
    arguments = [str(COMMAND), "networks", "create", str(model), "--name", "watched", *DETECTOR_FLAGS]

    status, drawn = read_terminal(arguments, env)

    assert status == 0, drawn
    # rich's bar with the bytes sent of the total and a rate, redrawn in place on the terminal
    bar_lines = [line for line in re.split(r"[\r\n]", drawn) if "uploading detector.onnx" in line]
    assert any("━" in line and "2.0/2.0 MiB" in line for line in bar_lines), drawn
    assert any(re.search(r"[\d.]+ [kMG]?i?B/s", line) for line in bar_lines), drawn
    assert re.search(r"network \d+: (pending|ready), \d+ s \(deploy task \d+\)", drawn), drawn  # the live status line
    assert "\x1b[" in drawn and "parity" in drawn
    network_id = re.search(r"Created network (\d+)", drawn).group(1)  # type: ignore[union-attr]

    piped = tensorgate(*arguments[1:])
    assert piped.code == 0
    assert "uploading" not in piped.err and "━" not in piped.err and "\r" not in piped.err
    assert "\x1b[" not in piped.err + piped.out
    assert "parity" in piped.out
    second_id = re.search(r"Created network (\d+)", piped.err).group(1)  # type: ignore[union-attr]
    for identifier in (network_id, second_id):
        assert tensorgate("networks", "delete", identifier).code == 0


def test_cli_each_subcommand_prints_a_table_and_json(
    tensorgate, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    network_id, task_id = str(large_detector["id"]), str(large_detector["task_id"])
    Image.new("RGB", PICTURE_SIZE, (10, 20, 30)).save(tmp_path / "picture.jpg")

    waited = tensorgate("networks", "wait", network_id)
    assert waited.code == 0 and re.search(r"status\s+ready", waited.out) and "parity: passed" in waited.out
    assert tensorgate("networks", "wait", network_id, "--json").json()["status"] == "ready"  # type: ignore[index]

    task_table = tensorgate("tasks", "get", task_id)
    assert task_table.code == 0 and re.search(rf"{task_id}\s+│\s+deploy\s+│\s+success", task_table.out)
    assert "onnx converted to ONNX" in task_table.out
    [task] = tensorgate("tasks", "wait", task_id, "--json").json_lines()
    waited_task = tensorgate("tasks", "wait", task_id)
    assert waited_task.code == 0 and re.search(rf"{task_id}\s+│\s+deploy\s+│\s+success", waited_task.out)
    assert task["kind"] == "deploy" and task["data"]["format"] == "onnx"  # type: ignore[index]

    inferred = tensorgate("infer", network_id, str(tmp_path / "picture.jpg"), "--json").json_lines()
    both = tensorgate("tasks", "get", task_id, str(inferred[0]["task_id"]), "--json").json_lines()
    assert [item["kind"] for item in both] == ["deploy", "inference"]
    assert "disc 0.900" in tensorgate("tasks", "get", str(inferred[0]["task_id"])).out

    updated = tensorgate("networks", "update", network_id, "--metadata", '{"stage": "test"}', "--json").json()
    assert updated["metadata"] == {"stage": "test"} and updated["name"] == "big detector"  # type: ignore[index]


def test_cli_specs_and_versions_recognise_through_the_spec_and_draw_its_boxes(
    tensorgate, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # A detection spec over the detector's two labels, and a version reading its boxes and scores
    created = tensorgate("specs", "create", "shapes", "--label", "disc", "--label", "corner", "--roi", "BBOX", "--json")
    assert created.code == 0, created.err
    spec = created.json()
    assert isinstance(spec, dict) and spec["current_version_id"] is None
    detection = {"direct_output": {"boxes_tensor": "boxes", "scores_tensor": "scores"}, "thresholds": [0.5, 0.7]}
    version = tensorgate(
        "versions", "create", "--spec", str(spec["id"]), "--network", str(large_detector["id"]),
        "--post-processings", json.dumps([{"detection": detection}]), "--json",
    )  # fmt: skip
    assert version.code == 0, version.err
    version_id = version.json()["id"]  # type: ignore[index]
    listed = tensorgate("specs", "list")
    assert "shapes" in listed.out and "detection, 2 labels" in listed.out
    assert f"{version_id} (current)" in tensorgate("specs", "versions", str(spec["id"])).out
    # Each read command: a table for people, one JSON document with --json
    spec_table = tensorgate("specs", "get", str(spec["id"])).out
    assert (
        re.search(rf"current version\s+{version_id}\b", spec_table)
        and "detection, 2 labels: 0:disc, 1:corner" in spec_table
    )
    specs_page = tensorgate("specs", "list", "--limit", "100", "--json").json()
    assert {"id": spec["id"], "current_version_id": version_id}.items() <= next(
        item
        for item in specs_page["results"]
        if item["id"] == spec["id"]  # type: ignore[index]
    ).items()
    [listed_version] = tensorgate("specs", "versions", str(spec["id"]), "--json").json()["results"]  # type: ignore[index]
    assert (listed_version["id"], listed_version["network_id"]) == (version_id, large_detector["id"])
    versions_table = tensorgate("versions", "list", "--limit", "100").out
    assert re.search(
        rf"{version_id}\s+│\s+{spec['id']} shapes\s+│\s+{large_detector['id']} big detector", versions_table
    )
    assert "detection (direct_output)" in versions_table
    assert any(
        item["id"] == version_id
        for item in tensorgate("versions", "list", "--limit", "100", "--json").json()["results"]
    )  # type: ignore[index]
    version_table = tensorgate("versions", "get", str(version_id)).out
    assert (
        re.search(rf"network\s+{large_detector['id']} big detector", version_table)
        and '"boxes_tensor": "boxes"' in version_table
    )
    got_version = tensorgate("versions", "get", str(version_id), "--json").json()
    assert got_version["spec_id"] == spec["id"] and got_version["post_processings"][0]["detection"]["thresholds"] == [
        0.5,
        0.7,
    ]  # type: ignore[index]

    # Inference through the spec: the corner's 0.6 is under its 0.7 threshold, shown only when asked
    picture = tmp_path / "grey.png"
    Image.new("RGB", PICTURE_SIZE, (128, 128, 128)).save(picture)
    table = tensorgate("infer", f"spec:{spec['id']}", str(picture), "--draw", str(tmp_path / "drawn"))
    assert table.code == 0, table.err
    assert "disc 0.900 [80, 60, 240, 180]" in table.out and "corner" not in table.out
    [shown] = tensorgate("infer", f"version:{version_id}", str(picture), "--show-discarded", "--json").json_lines()
    (output,) = shown["data"]["outputs"]  # type: ignore[index]
    # Every box scores both labels: the corner box's 0.6, then the 0.1 and 0.05 the boxes give the other label
    discarded = [(d["label_name"], round(d["score"], 2)) for d in output["labels"]["discarded"]]
    assert discarded == [("corner", 0.6), ("disc", 0.1), ("corner", 0.05)]
    with Image.open(tmp_path / "drawn" / "grey.png") as drawn:
        rgb = drawn.convert("RGB")
        assert rgb.getpixel((80, 120)) != (128, 128, 128) and rgb.getpixel((30, 40)) == (128, 128, 128)

    # Without a current version the spec answers 409 with its sentence: exit 1
    assert tensorgate("specs", "update", str(spec["id"]), "--current-version", "none").code == 0
    refused = tensorgate("infer", f"spec:{spec['id']}", str(picture))
    assert refused.code == 1 and "current version" in refused.err
    assert tensorgate("versions", "delete", str(version_id), "--json").json() == {"id": version_id, "deleted": True}
    assert tensorgate("specs", "delete", str(spec["id"])).code == 0
    assert tensorgate("versions", "get", str(version_id)).code == 1


def test_cli_endpoint_predicts_in_the_same_request_then_shutdown_refuses(
    tensorgate, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    created = tensorgate("endpoints", "create", "cli shapes", "--network", str(large_detector["id"]), "--json")
    assert created.code == 0, created.err
    endpoint = created.json()
    assert isinstance(endpoint, dict) and endpoint["status"] == "running"
    pictures = []
    for index in range(2):
        pictures.append(tmp_path / f"grey{index}.png")
        Image.new("RGB", PICTURE_SIZE, (128, 128, 128 + index)).save(pictures[-1])

    # By name, two pictures in one request: both answered in the same response
    ran = tensorgate("endpoints", "predict", "cli shapes", *map(str, pictures), "--json")
    assert ran.code == 0, ran.err
    answers = ran.json_lines()
    assert [a["status"] for a in answers] == ["success", "success"]
    assert [o["label"] for o in answers[0]["data"]["outputs"]] == ["disc", "corner"]  # type: ignore[index]
    by_id = tensorgate("endpoints", "predict", str(endpoint["id"]), str(pictures[0]))
    assert "disc 0.900 [80, 60, 240, 180]" in by_id.out
    assert "cli shapes" in tensorgate("endpoints", "list", "--search", "CLI SHA").out
    [listed] = tensorgate("endpoints", "list", "--search", "CLI SHA", "--json").json()["results"]  # type: ignore[index]
    assert (listed["id"], listed["network_id"]) == (endpoint["id"], large_detector["id"])
    shown = tensorgate("endpoints", "get", "cli shapes").out
    assert re.search(rf"target\s+network {large_detector['id']}", shown) and re.search(r"status\s+running", shown)
    assert tensorgate("endpoints", "get", str(endpoint["id"]), "--json").json()["name"] == "cli shapes"  # type: ignore[index]

    stopped = tensorgate("endpoints", "shutdown", "cli shapes", "--json")
    assert stopped.code == 0 and stopped.json()["status"] == "shutdown"  # type: ignore[index]
    refused = tensorgate("endpoints", "predict", "cli shapes", str(pictures[0]))
    assert refused.code == 1 and "shut down" in refused.err
    assert tensorgate("endpoints", "delete", "cli shapes", "--json").json() == {"id": endpoint["id"], "deleted": True}
    assert tensorgate("endpoints", "get", "cli shapes").code == 1


def test_cli_job_over_a_prefix_watched_downloaded_in_input_order(
    tensorgate, local_stack_with_workers: RunningStack, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.test_faults import Stack

    stack = Stack(local_stack_with_workers)
    keys = [f"uploads/dev/cli-job/picture-{index}.png" for index in range(6)]
    for index, key in enumerate(keys):
        picture = tmp_path / f"{index}.png"
        Image.new("RGB", (40, 30), (index * 40, 0, 0)).save(picture)
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=picture.read_bytes())
    prefix = f"s3://{stack.bucket}/uploads/dev/cli-job/"

    submitted = tensorgate(
        "jobs", "submit", "cli job", "--network", str(large_detector["id"]), "--prefix", prefix, "--watch", "--json"
    )

    assert submitted.code == 0, submitted.err
    job = submitted.json()
    assert isinstance(job, dict) and (job["status"], job["done"], job["total"]) == ("success", 6, 6)
    job_table = tensorgate("jobs", "get", str(job["id"])).out
    assert re.search(r"items\s+6 done, 0 failed, 0 cancelled of 6", job_table)
    assert f"tensorgate jobs download {job['id']}" in job_table
    assert tensorgate("jobs", "get", str(job["id"]), "--json").json()["results_url"]  # type: ignore[index]
    assert re.search(
        rf"{job['id']}\s+│\s+cli job\s+│\s+success\s+│\s+6\s+│\s+0\s+│\s+6",
        tensorgate("jobs", "list", "--search", "CLI JOB").out,
    )
    [listed] = tensorgate("jobs", "list", "--search", "CLI JOB", "--json").json()["results"]  # type: ignore[index]
    assert (listed["id"], listed["done"]) == (job["id"], 6)
    watched = tensorgate("jobs", "watch", str(job["id"]))
    assert watched.code == 0 and re.search(r"status\s+success", watched.out)
    results = tmp_path / "results.jsonl"
    written = tensorgate("jobs", "download", str(job["id"]), "-o", str(results), "--json")
    assert written.code == 0 and written.json() == {
        "id": job["id"],
        "file": str(results),
        "bytes": results.stat().st_size,
    }
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["input"] for line in lines] == [f"s3://{stack.bucket}/{key}" for key in keys]
    assert all(line["status"] == "success" for line in lines)
    # An ended job cannot be cancelled: the service's 409 sentence, exit 1
    assert tensorgate("jobs", "cancel", str(job["id"])).code == 1


def test_cli_job_bar_counts_done_and_failed_and_download_bar_on_a_terminal_and_absent_when_piped(
    tensorgate, local_stack_with_workers: RunningStack, large_detector: dict[str, object], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.test_faults import Stack

    stack = Stack(local_stack_with_workers)
    # Five pictures and one object that is not a picture: five items done, one failed
    for index in range(6):
        picture = tmp_path / f"{index}.png"
        Image.new("RGB", (40, 30), (0, index * 40, 0)).save(picture)
        body = picture.read_bytes() if index < 5 else b"not a picture"
        stack.s3.put_object(Bucket=stack.bucket, Key=f"uploads/dev/cli-bar/picture-{index}.png", Body=body)
    prefix = f"s3://{stack.bucket}/uploads/dev/cli-bar/"
    env = environment(local_stack_with_workers, tmp_path / "config") | {"TERM": "xterm-256color"}
    submit = ["jobs", "submit", "--network", str(large_detector["id"]), "--prefix", prefix, "--watch"]

    status, drawn = read_terminal([str(COMMAND), *submit[:2], "cli bar watched", *submit[2:]], env)

    assert status == 0, drawn
    # rich's bar, redrawn in place, with the counts beside it; the last drawing has every item
    assert "\x1b[" in drawn and "━" in drawn and re.search(r"job \d+", drawn), drawn
    assert "5 done, 1 failed of 6" in drawn, drawn
    [job] = tensorgate("jobs", "list", "--search", "cli bar watched", "--json").json()["results"]  # type: ignore[index]
    assert (job["status"], job["done"], job["failed"]) == ("success", 5, 1)

    status, drawn = read_terminal(
        [str(COMMAND), "jobs", "download", str(job["id"]), "-o", str(tmp_path / "watched.jsonl")], env
    )
    assert status == 0, drawn
    assert re.search(rf"downloading job {job['id']}.*━", drawn) and "\x1b[" in drawn, drawn
    lines = (tmp_path / "watched.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["success"] * 5 + ["error"]

    piped = tensorgate(*submit[:2], "cli bar piped", *submit[2:])
    assert piped.code == 0, piped.err
    assert "━" not in piped.err and "\r" not in piped.err and "\x1b[" not in piped.err + piped.out
    assert re.search(r"items\s+5 done, 1 failed, 0 cancelled of 6", piped.out)
    [piped_job] = tensorgate("jobs", "list", "--search", "cli bar piped", "--json").json()["results"]  # type: ignore[index]
    downloaded = tensorgate("jobs", "download", str(piped_job["id"]), "-o", str(tmp_path / "piped.jsonl"))
    assert downloaded.code == 0 and downloaded.err == "" and "Wrote" in downloaded.out


def test_cli_dataset_from_a_folder_per_class_reports_its_item_errors(tensorgate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "cli-pets"
    for label, colour in (("cat", (200, 120, 40)), ("dog", (90, 60, 30))):
        (folder / label).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (24, 16), colour).save(folder / label / f"{index}.png")
    (folder / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")

    created = tensorgate("datasets", "create", str(folder), "--json")

    assert created.code == 0, created.err
    dataset = created.json()
    assert isinstance(dataset, dict) and dataset["name"] == "cli-pets" and dataset["status"] == "ready"
    assert dataset["classes"] == {"cat": 0, "dog": 1}
    assert (dataset["extraction"]["items"], dataset["extraction"]["item_errors"]) == (6, 1)
    errors = tensorgate("datasets", "errors", "cli-pets")
    assert errors.code == 0 and "broken.jpg" in errors.out
    assert "cli-pets" in tensorgate("datasets", "list", "--search", "PETS").out
    [listed] = tensorgate("datasets", "list", "--search", "PETS", "--json").json()["results"]  # type: ignore[index]
    assert (listed["id"], listed["status"]) == (dataset["id"], "ready") and "upload" not in listed
    shown = tensorgate("datasets", "get", "cli-pets").out
    assert re.search(r"items\s+6", shown) and re.search(r"item errors\s+1", shown) and '"dog": 1' in shown
    assert tensorgate("datasets", "get", str(dataset["id"]), "--json").json()["classes"] == {"cat": 0, "dog": 1}  # type: ignore[index]
    assert tensorgate("datasets", "delete", "cli-pets", "--json").json() == {"id": dataset["id"], "deleted": True}
    assert tensorgate("datasets", "get", str(dataset["id"])).code == 1


def test_cli_dataset_split_and_evaluation_of_a_network_whose_answers_are_known(  # type: ignore[no-untyped-def]
    tensorgate, tmp_path: Path
) -> None:
    from tests.unit.worker.tiny_models import channel_mean_model

    # A network answering an image's channel means: it predicts a solid picture's colour
    model = tmp_path / "means.onnx"
    model.write_bytes(channel_mean_model(8, 8))
    preprocessing = {"inputs": [{"tensor_name": "image", "image": {"pixel_scaling": 1.0}}], "batched_output": True}
    network = tensorgate(
        "networks", "create", str(model), "--name", "cli colour means", "--preprocessing", json.dumps(preprocessing),
        "--target-size", "8x8", "--dimension-order", "NHWC", "--resize-type", "SQUASH", "--json",
    )  # fmt: skip
    assert network.code == 0, network.err
    network_id = network.json()["id"]  # type: ignore[index]
    # Ten pictures in a folder per class, one green picture filed under red
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    folder = tmp_path / "cli-colours"
    for label in colours:
        (folder / label).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (16, 12), colours[label]).save(folder / label / f"{index}.png")
    Image.new("RGB", (16, 12), colours["green"]).save(folder / "red" / "mislabelled.png")
    classes = json.dumps({"red": 0, "green": 1, "blue": 2})
    dataset = tensorgate("datasets", "create", str(folder), "--classes", classes, "--json").json()
    assert isinstance(dataset, dict) and dataset["status"] == "ready", dataset

    split = tensorgate("datasets", "split", "cli-colours", "all", "--part", "test=100", "--seed", "7", "--json")
    assert split.code == 0, split.err
    assert split.json()["counts"] == {"test": 10}  # type: ignore[index]
    split_id = str(split.json()["id"])  # type: ignore[index]
    plots = tmp_path / "plots"
    evaluated = tensorgate(
        "datasets", "evaluate", "cli-colours", split_id, "--network", str(network_id), "--output-tensor", "mean",
        "--plots", str(plots),
    )  # fmt: skip

    assert evaluated.code == 0, evaluated.err
    assert "10 items, accuracy 0.9000" in evaluated.out
    cells = [re.split(r"[\s│]+", line.strip("│ ")) for line in evaluated.out.splitlines()]
    assert ["red", "1.000", "0.750", "0.857", "4"] in cells and ["green", "0.750", "1.000", "0.857", "3"] in cells
    with Image.open(plots / "confusion_matrix.png") as picture:
        assert picture.width > 200 and len(set(picture.convert("L").getdata())) > 10
    tensorgate("datasets", "delete", "cli-colours")
    tensorgate("networks", "delete", str(network_id))
