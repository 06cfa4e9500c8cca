"""The real `deepomatic-api` 1.0.0 client's RecognitionSpec and RecognitionVersion against the stack `make dev` starts.

Two networks of the same tiny ONNX model (an image's mean colour, and twice it) are uploaded and
converted; a spec with three colour labels gets one version per network, each reading another of the
model's outputs, so every score is computable by hand: a red picture's red score is 1.0 through the
first version and 2.0 through the second.

Detection: a hand-built YOLOv8-style graph served through a spec, and two torch exports (YOLOv5- and
YOLOv8-shaped heads, tests/unit/worker/yolo_exports.py) behind one spec whose current version switches
from the first to the second, each answer's boxes worked out by hand.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepomatic.api.client import Client
from deepomatic.api.exceptions import ClientError
from deepomatic.api.inputs import ImageInput

from tests.e2e.conftest import RunningStack
from tests.unit.worker.tiny_models import channel_mean_model, solid_image, yolo_v8_style_detector

pytestmark = [pytest.mark.e2e]

COLOURS = [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}, {"id": 3, "name": "blue"}]
PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "image",
            "image": {"dimension_order": "NHWC", "target_size": "4x4", "resize_type": "SQUASH", "pixel_scaling": 1.0},
        }
    ],
    "batched_output": True,
}
RED, YELLOW = (255, 0, 0), (255, 255, 0)


def deployed_network(client: Client, name: str, model_path: Any) -> int:
    with open(model_path, "rb") as handle:
        network = client.Network.create(
            name=name, framework="onnx", preprocessing=PREPROCESSING, files={"model.onnx": handle}
        )
    deploy = client.Task.retrieve(network["task_id"]).wait(timeout=300)
    assert deploy["status"] == "success", deploy
    return int(network["id"])


def classification(tensor: str, threshold: float) -> list[dict[str, Any]]:
    return [{"classification": {"output_tensor": tensor, "thresholds": [threshold] * 3}}]


def predicted(result: dict[str, Any]) -> list[tuple[str, float]]:
    (output,) = result["outputs"]
    return [(item["label_name"], round(item["score"], 3)) for item in output["labels"]["predicted"]]


def infer(resource: Any, colour: tuple[int, int, int] | bytes) -> dict[str, Any]:
    picture = colour if isinstance(colour, bytes) else solid_image(colour)
    return dict(resource.inference(inputs=[ImageInput(picture, encoding="binary")]))


def test_deepomatic_client_recognition_specs_and_versions_end_to_end(
    local_stack_with_workers: RunningStack, tmp_path: Any
) -> None:
    stack = local_stack_with_workers
    client = Client(api_key=stack.api_key, host=stack.host, user_agent_prefix="tensorgate-e2e/1")
    model = tmp_path / "model.onnx"
    model.write_bytes(channel_mean_model())

    # Spec: create, retrieve, list, update
    spec = client.RecognitionSpec.create(
        name="colours",
        description="the main colour of a picture",
        metadata={"project": "e2e"},
        outputs=[{"labels": {"roi": "NONE", "exclusive": False, "labels": COLOURS}}],
    )
    spec_id = spec["id"]
    assert isinstance(spec_id, int) and spec["current_version_id"] is None
    assert client.RecognitionSpec.retrieve(spec_id)["outputs"][0]["labels"]["labels"] == COLOURS
    assert spec_id in [item.pk for item in client.RecognitionSpec.list()]
    spec.update(name="colours, renamed", metadata={"project": "e2e", "round": 2})
    again = client.RecognitionSpec.retrieve(spec_id)
    assert again["name"] == "colours, renamed" and again["description"] == "the main colour of a picture"

    # Versions on two converted networks: create, list, spec.versions()
    first_network = deployed_network(client, "mean colour", model)
    second_network = deployed_network(client, "mean colour, second copy", model)
    first = client.RecognitionVersion.create(
        spec_id=spec_id, network_id=first_network, post_processings=classification("mean", 0.5)
    )
    second = client.RecognitionVersion.create(
        spec_id=spec_id, network_id=second_network, post_processings=classification("scaled", 0.9)
    )
    assert first["spec_name"] == "colours, renamed" and second["network_name"] == "mean colour, second copy"
    assert client.RecognitionSpec.retrieve(spec_id)["current_version_id"] == first["id"]
    assert [version.pk for version in client.RecognitionSpec.retrieve(spec_id).versions()] == [first.pk, second.pk]
    assert {first.pk, second.pk} <= {version.pk for version in client.RecognitionVersion.list()}

    # Inference through a version and through the spec (its current version)
    assert predicted(infer(client.RecognitionVersion.retrieve(second.pk), RED)) == [("red", 2.0)]
    assert predicted(infer(client.RecognitionSpec.retrieve(spec_id), RED)) == [("red", 1.0)]
    assert predicted(infer(client.RecognitionSpec.retrieve(spec_id), YELLOW)) == [("red", 1.0), ("green", 1.0)]

    # Switching the current version changes the spec's answer, with no other change on the client's side
    client.RecognitionSpec.retrieve(spec_id).update(current_version_id=second.pk)
    assert predicted(infer(client.RecognitionSpec.retrieve(spec_id), RED)) == [("red", 2.0)]

    # Deleting the second network deletes its version, which was current: the spec then has none (409)
    client.Network.retrieve(second_network).delete()
    with pytest.raises(ClientError) as gone:
        client.RecognitionVersion.retrieve(second.pk)["id"]
    assert gone.value.status_code == 404
    assert client.RecognitionSpec.retrieve(spec_id)["current_version_id"] is None
    with pytest.raises(ClientError) as none_current:
        infer(client.RecognitionSpec.retrieve(spec_id), RED)
    assert none_current.value.status_code == 409
    assert [version.pk for version in client.RecognitionSpec.retrieve(spec_id).versions()] == [first.pk]

    # Delete the remaining version and the spec
    assert client.RecognitionVersion.retrieve(first.pk).delete() is None
    assert client.RecognitionSpec.retrieve(spec_id).delete() is None
    with pytest.raises(ClientError) as deleted:
        client.RecognitionSpec.retrieve(spec_id)["name"]
    assert deleted.value.status_code == 404
    client.Network.retrieve(first_network).delete()


def test_deepomatic_client_yolo_export_served_through_a_detection_spec(
    local_stack_with_workers: RunningStack, tmp_path: Any
) -> None:
    # Given a YOLO-style ONNX export (NCHW `images` in [0, 1], one raw v8 head `output0`) uploaded as is
    stack = local_stack_with_workers
    client = Client(api_key=stack.api_key, host=stack.host, user_agent_prefix="tensorgate-e2e/1")
    model = tmp_path / "yolo.onnx"
    model.write_bytes(yolo_v8_style_detector())
    preprocessing = {
        "inputs": [
            {"tensor_name": "images", "image": {"dimension_order": "NCHW", "target_size": "64x64", "pixel_scaling": 1}}
        ],
        "batched_output": True,
    }
    with open(model, "rb") as handle:
        network = client.Network.create(
            name="yolo export", framework="onnx", preprocessing=preprocessing, files={"model.onnx": handle}
        )
    assert client.Task.retrieve(network["task_id"]).wait(timeout=300)["status"] == "success"
    labels = [{"id": 5, "name": "apple"}, {"id": 6, "name": "leaf"}]
    spec = client.RecognitionSpec.create(
        name="fruit", outputs=[{"labels": {"roi": "BBOX", "exclusive": False, "labels": labels}}]
    )
    detection = {"yolo_output": {"output_tensor": "output0", "layout": "v8"}, "thresholds": [0.5, 0.5]}
    client.RecognitionVersion.create(
        spec_id=spec["id"], network_id=network["id"], post_processings=[{"detection": detection}]
    )

    # When a yellow picture (red and green) is recognised through the spec
    result = infer(client.RecognitionSpec.retrieve(spec["id"]), YELLOW)

    # Then both fixed boxes come back labelled, in the 32×24 picture's pixels
    (output,) = result["outputs"]
    assert [(p["label_name"], p["roi"]["region_id"], p["roi"]["bbox"]) for p in output["labels"]["predicted"]] == [
        ("apple", 1, {"xmin": 4.0, "ymin": 3.0, "xmax": 12.0, "ymax": 9.0}),
        ("leaf", 2, {"xmin": 20.0, "ymin": 9.0, "xmax": 28.0, "ymax": 21.0}),
    ]
    client.RecognitionSpec.retrieve(spec["id"]).delete()
    client.Network.retrieve(network["id"]).delete()


def uploaded_export(client: Client, model_path: Any, name: str) -> int:
    """A YOLO export uploaded as is, letterboxed to its 64×64 export size, deployed: the network's id."""
    image = {"dimension_order": "NCHW", "target_size": "64x64", "pixel_scaling": 1, "resize_type": "FILL"}
    preprocessing = {"inputs": [{"tensor_name": "images", "image": image}], "batched_output": True}
    with open(model_path, "rb") as handle:
        network = client.Network.create(
            name=name, framework="onnx", preprocessing=preprocessing, files={"model.onnx": handle}
        )
    assert client.Task.retrieve(network["task_id"]).wait(timeout=300)["status"] == "success"
    return int(network["id"])


def boxes(result: dict[str, Any]) -> list[tuple[str, float, dict[str, float]]]:
    (output,) = result["outputs"]
    return [(p["label_name"], round(p["score"], 6), p["roi"]["bbox"]) for p in output["labels"]["predicted"]]


def test_deepomatic_client_switches_a_detection_spec_from_a_yolov5_export_to_a_yolov8_export(
    local_stack_with_workers: RunningStack, tmp_path: Any
) -> None:
    import io

    from PIL import Image, ImageDraw

    from tests.unit.worker.yolo_exports import YoloV5StyleDetector, YoloV8StyleDetector, export_onnx

    # Given two exports by torch.onnx.export, as YOLOv5 and Ultralytics write them (tests/unit/worker/yolo_exports.py),
    # uploaded with the client, and a spec with one version on each (the v5 one current)
    stack = local_stack_with_workers
    client = Client(api_key=stack.api_key, host=stack.host, user_agent_prefix="tensorgate-e2e/1")
    v5 = YoloV5StyleDetector(
        anchors=[[(16, 24), (16, 16), (24, 24)], [(24, 32), (24, 24), (32, 32)]],
        objectness=[[2.0, -1.0, -2.0], [3.0, -1.0, -2.0]],
    )
    (tmp_path / "v5.onnx").write_bytes(export_onnx(v5, "v5"))
    (tmp_path / "v8.onnx").write_bytes(export_onnx(YoloV8StyleDetector(distances=(1, 0, 1, 1)), "v8"))
    v5_network = uploaded_export(client, tmp_path / "v5.onnx", "yolov5 export")
    v8_network = uploaded_export(client, tmp_path / "v8.onnx", "yolov8 export")
    labels = [{"id": 5, "name": "apple"}, {"id": 6, "name": "leaf"}]
    spec = client.RecognitionSpec.create(
        name="fruit, exported", outputs=[{"labels": {"roi": "BBOX", "exclusive": False, "labels": labels}}]
    )
    versions = {
        layout: client.RecognitionVersion.create(
            spec_id=spec["id"],
            network_id=network,
            post_processings=[
                {"detection": {"yolo_output": {"output_tensor": "output0", "layout": layout}, "thresholds": [0.5, 0.5]}}
            ],
        )
        for layout, network in (("v5", v5_network), ("v8", v8_network))
    }
    assert client.RecognitionSpec.retrieve(spec["id"])["current_version_id"] == versions["v5"]["id"]

    # When a black 128×128 picture (halved into the 64×64 input) with a red block on the stride-16 cell of
    # column 2, row 1 and a green block on the cell of column 0, row 3 is recognised through the spec, then
    # again after the spec's current version becomes the v8 one
    image = Image.new("RGB", (128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((64, 32, 95, 63), fill=RED)
    draw.rectangle((0, 96, 31, 127), fill=(0, 255, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    through_v5 = infer(client.RecognitionSpec.retrieve(spec["id"]), buffer.getvalue())
    client.RecognitionSpec.retrieve(spec["id"]).update(current_version_id=versions["v8"]["id"])
    through_v8 = infer(client.RecognitionSpec.retrieve(spec["id"]), buffer.getvalue())

    # Then v5 answers each cell's first anchor (16×24, centred on the cell) at objectness σ(2) = 0.880797;
    # v8 each cell's box (1 cell left and right, down to the next cell), score 1; both doubled into the
    # picture's pixels, cut at its edge
    assert boxes(through_v5) == [
        ("apple", 0.880797, {"xmin": 64.0, "ymin": 24.0, "xmax": 96.0, "ymax": 72.0}),
        ("leaf", 0.880797, {"xmin": 0.0, "ymin": 88.0, "xmax": 32.0, "ymax": 128.0}),
    ]
    assert boxes(through_v8) == [
        ("apple", 1.0, {"xmin": 48.0, "ymin": 48.0, "xmax": 112.0, "ymax": 80.0}),
        ("leaf", 1.0, {"xmin": 0.0, "ymin": 112.0, "xmax": 48.0, "ymax": 128.0}),
    ]
    client.RecognitionSpec.retrieve(spec["id"]).delete()
    client.Network.retrieve(v5_network).delete()
    client.Network.retrieve(v8_network).delete()
