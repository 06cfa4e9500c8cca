"""PyTorch uploads: torchvision-style networks scripted (torch.jit.save) and exported (torch.export.save),
converted with a dynamic batch and checked against torch; the refusals a PyTorch user can meet."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import onnxruntime as ort
import pytest
import torch

from functions.converter.convert import ConversionFailed, ConversionOptions, Reason, convert_network
from tests.unit.converter import torch_zoo

pytestmark = pytest.mark.slow

# The dynamo exporter takes 5-25 s a network on this shared machine: the suite exports the one with
# two inputs and a dict output (and a bounded-batch head below); `python bench/convert.py --pytorch --zoo`
# exports every architecture.
EXPORTED_IN_SUITE = ["TwoInputs"]


def _check_against_torch(
    output, model: torch.nn.Module, architecture: torch_zoo.Architecture, names: list[str]
) -> None:
    """Beyond the converter's own check: a batch size it never saw, through onnxruntime, equals torch's answer."""
    examples = architecture.examples(batch=3)
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {entry["name"]: example.numpy() for entry, example in zip(architecture.input_spec, examples, strict=True)}
    produced = dict(zip(names, session.run(names, feeds), strict=True))
    with torch.no_grad():
        expected = model(*examples)
    expected = expected if isinstance(expected, dict) else {"output": expected}
    for name, value in expected.items():
        assert produced[name].shape == tuple(value.shape)
        np.testing.assert_allclose(produced[name], value.numpy(), rtol=1e-4, atol=1e-5)


def _assert_converted(result, architecture: torch_zoo.Architecture, record_property) -> list[str]:
    assert result.parity["checked"] and result.parity["passed"], result.parity
    assert [tensor.name for tensor in result.signature.inputs] == [entry["name"] for entry in architecture.input_spec]
    for tensor in (*result.signature.inputs, *result.signature.outputs):
        assert tensor.shape[0] == "batch", tensor
    record_property("max_abs", max(item["max_abs"] for item in result.parity["outputs"]))
    record_property("seconds", sum(result.timings.values()))
    return [tensor.name for tensor in result.signature.outputs]


@pytest.mark.parametrize("name", sorted(torch_zoo.ARCHITECTURES))
def test_convert_network_pytorch_scripted_architecture_converts_with_parity(name, upload, output, record_property):
    architecture = torch_zoo.ARCHITECTURES[name]
    model = architecture.model()
    torch_zoo.save_torchscript(model, upload / "model.pt")

    result = convert_network(upload, output, framework="pytorch", input_spec=list(architecture.input_spec))

    names = _assert_converted(result, architecture, record_property)
    assert result.format == "torchscript" and "TorchScript exporter" in result.source["exporter"]
    _check_against_torch(output, model, architecture, names)


@pytest.mark.parametrize("name", EXPORTED_IN_SUITE)
def test_convert_network_pytorch_exported_program_converts_with_parity(name, upload, output, record_property):
    architecture = torch_zoo.ARCHITECTURES[name]
    model = architecture.model()
    torch_zoo.save_exported(model, architecture.examples(), architecture.input_spec, upload / "model.pt2")

    # input_spec is optional for a program: it records its inputs' dtypes and shapes itself.
    result = convert_network(upload, output, framework="pytorch")

    names = _assert_converted(result, architecture, record_property)
    assert result.format == "torch_export" and "dynamo" in result.source["exporter"]
    _check_against_torch(output, model, architecture, names)


def test_convert_network_pytorch_dict_output_keys_name_the_outputs(upload, output):
    architecture = torch_zoo.ARCHITECTURES["TwoInputs"]
    torch_zoo.save_torchscript(architecture.model(), upload / "model.pt")

    result = convert_network(
        upload,
        output,
        framework="pytorch",
        input_spec=list(architecture.input_spec),
        postprocessings=[{"tensors_output": {"tensors": ["embedding"]}}],
    )

    assert [tensor.to_dict() for tensor in result.signature.outputs] == [
        {"name": "scores", "dtype": "float32", "shape": ["batch", 5]},
        {"name": "embedding", "dtype": "float32", "shape": ["batch", 16]},
    ]


def test_convert_network_pytorch_tuple_outputs_are_named_by_position(upload, output):
    torch_zoo.save_torchscript(torch_zoo.BoxesAndScores().eval(), upload / "model.pt")
    spec = [{"name": "x", "dtype": "float32", "shape": ["batch", 6]}]

    result = convert_network(
        upload, output, framework="pytorch", input_spec=spec, postprocessings=[{"tensors_output": {"tensors": ["1"]}}]
    )

    assert [tensor.name for tensor in result.signature.outputs] == ["output_0", "output_1"]
    assert result.name_map["1"] == "output_1"
    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            upload,
            output,
            framework="pytorch",
            input_spec=spec,
            postprocessings=[{"tensors_output": {"tensors": ["boxes"]}}],
        )
    assert caught.value.reason is Reason.UNKNOWN_TENSOR
    assert "'output_0', 'output_1'" in caught.value.message


def test_convert_network_pytorch_test_data_is_verified_as_for_tensorflow(upload, output):
    model = torch_zoo.BoxesAndScores().eval()
    torch_zoo.save_torchscript(model, upload / "model.pt")
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    with torch.no_grad():
        boxes, scores = (value.numpy() for value in model(torch.from_numpy(x)))
    np.savez(upload / "test_input.npz", x=x)
    np.savez(upload / "test_expected_output.npz", output_0=boxes, output_1=scores)
    spec = [{"name": "x", "dtype": "float32", "shape": ["batch", 6]}]

    result = convert_network(upload, output, framework="pytorch", input_spec=spec)

    assert result.expected_output is not None and result.expected_output["passed"]
    assert [case["inputs"] for case in result.parity["cases"]] == ["generated", "test_input"]
    np.savez(upload / "test_expected_output.npz", output_0=boxes, output_1=scores + 0.1)
    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="pytorch", input_spec=spec)
    assert caught.value.reason is Reason.EXPECTED_OUTPUT_MISMATCH
    assert "'output_1'" in caught.value.message


def test_convert_network_pytorch_torchscript_without_input_spec_is_refused_naming_forward_arguments(upload, output):
    torch_zoo.save_torchscript(torch_zoo.ARCHITECTURES["TwoInputs"].model(), upload / "model.pt")

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="pytorch")

    assert caught.value.reason is Reason.INVALID_DECLARATION
    assert "send input_spec" in caught.value.message and "'image', 'features'" in caught.value.message


def test_convert_network_pytorch_input_spec_naming_no_argument_is_refused(upload, output):
    torch_zoo.save_torchscript(torch_zoo.BoxesAndScores().eval(), upload / "model.pt")

    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            upload, output, framework="pytorch", input_spec=[{"name": "image", "dtype": "float32", "shape": [1, 6]}]
        )

    assert caught.value.reason is Reason.UNKNOWN_TENSOR
    assert "input_spec names 'image'" in caught.value.message and "takes 'x'" in caught.value.message


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_convert_network_pytorch_checkpoint_is_refused_without_unpickling(layout, upload, output):
    # torch.save's zip (torch 1.6 and later) and the bare pickle stream before it, still written on request.
    state = torch_zoo.BoxesAndScores().state_dict()
    torch.save(state, upload / "model.pth", _use_new_zipfile_serialization=layout == "zip")

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="pytorch")

    assert caught.value.reason is Reason.UNSAFE_MODEL
    assert "torch.jit.save" in caught.value.message and "torch.export.save" in caught.value.message


def test_convert_network_pytorch_program_with_a_fixed_batch_is_refused_with_the_dynamic_shapes_to_use(upload, output):
    program = torch.export.export(torch_zoo.BoxesAndScores().eval(), (torch.zeros(2, 6),))
    torch.export.save(program, upload / "model.pt2")

    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            upload, output, framework="pytorch", input_spec=[{"name": "x", "dtype": "float32", "shape": ["batch", 6]}]
        )

    assert caught.value.reason is Reason.SPEC_MISMATCH
    assert "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}" in caught.value.message


def test_convert_network_pytorch_program_bounded_batch_names_its_range_and_converts_within_it(upload, output):
    batch = torch.export.Dim("batch", min=10, max=100)
    program = torch.export.export(
        torch_zoo.BoxesAndScores().eval(), (torch.zeros(12, 6),), dynamic_shapes={"x": {0: batch}}
    )
    torch.export.save(program, upload / "model.pt2")

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="pytorch")
    result = convert_network(upload, output, framework="pytorch", options=ConversionOptions(test_batch_size=12))

    assert caught.value.reason is Reason.RUNTIME_ERROR
    assert "exported for x dimension 0 in 10..100: set conversion_options.test_batch_size" in caught.value.message
    assert result.parity["passed"] and result.signature.inputs[0].shape == ("batch", 6)


@pytest.mark.parametrize("save", ["script", "trace"])
def test_convert_network_pytorch_integer_and_bool_inputs_of_symbolic_length_convert_with_parity(save, upload, output):
    model = torch_zoo.TokenClassifier().eval()
    tokens, mask = torch.tensor([[3, 7, 1, 0], [5, 2, 0, 0]]), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    saved = torch.jit.script(model) if save == "script" else torch.jit.trace(model, (tokens, mask))
    torch.jit.save(saved, str(upload / "model.pt"))
    spec = [
        {"name": "tokens", "dtype": "int64", "shape": ["batch", "length"]},
        {"name": "mask", "dtype": "bool", "shape": ["batch", "length"]},
    ]

    result = convert_network(upload, output, framework="pytorch", input_spec=spec)

    assert result.parity["passed"], result.parity
    assert [tensor.shape for tensor in result.signature.inputs] == [("batch", "length"), ("batch", "length")]
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    longer = torch.randint(0, 20, (3, 7)), torch.rand(3, 7) < 0.7
    (logits,) = session.run(None, {"tokens": longer[0].numpy(), "mask": longer[1].numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(*longer).numpy(), rtol=1e-5, atol=1e-6)


def test_convert_network_pytorch_file_inside_the_presigned_archive_converts(upload, output, tmp_path):
    # Files over the multipart limit arrive as one model.zip (the client zips them, TorchScript itself a zip)
    architecture = torch_zoo.ARCHITECTURES["TwoInputs"]
    scripted = torch_zoo.save_torchscript(architecture.model(), tmp_path / "model.pt")
    np.savez(
        tmp_path / "test_input.npz",
        **{name: value.numpy() for name, value in zip(["image", "features"], architecture.examples(3), strict=True)},
    )
    with zipfile.ZipFile(upload / "model.zip", "w") as archive:
        archive.write(scripted, "model.pt")
        archive.write(tmp_path / "test_input.npz", "test_input.npz")

    result = convert_network(upload, output, framework="pytorch", input_spec=list(architecture.input_spec))

    assert result.source["files"] == ["model.zip:model.pt"] and result.parity["passed"]
    assert [case["input_shapes"]["image"][0] for case in result.parity["cases"]] == [2, 3]


class _RunsCodeWhenUnpickled:
    def __reduce__(self):  # what a hostile file does: name a callable for the unpickler to call
        return (os.getcwd, ())


def test_convert_network_pytorch_program_with_a_general_pickle_inside_is_refused_unopened(upload, output, tmp_path):
    program = torch.export.export(torch_zoo.BoxesAndScores().eval(), (torch.zeros(2, 6),))
    torch.export.save(program, tmp_path / "saved.pt2")
    hostile = io.BytesIO()
    torch.save(((_RunsCodeWhenUnpickled(),), {}), hostile)
    with zipfile.ZipFile(tmp_path / "saved.pt2") as saved, zipfile.ZipFile(upload / "model.pt2", "w") as rewritten:
        for name in saved.namelist():
            inner = name.split("/", 1)[1]
            rewritten.writestr(
                name, hostile.getvalue() if inner.startswith("data/sample_inputs/") else saved.read(name)
            )

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="pytorch")

    assert caught.value.reason is Reason.UNSAFE_MODEL
    assert "'data/sample_inputs/model.pt', a pickle holding more than tensors" in caught.value.message


@pytest.mark.parametrize("dynamic", ["Dim", "AUTO"])
def test_convert_network_pytorch_program_with_an_unbounded_batch_converts(dynamic, upload, output):
    # Dim("batch") without min/max, or Dim.AUTO, as most export code writes it: the range ends at torch's int_oo.
    batch = torch.export.Dim("batch") if dynamic == "Dim" else torch.export.Dim.AUTO
    model = torch_zoo.BoxesAndScores().eval()
    program = torch.export.export(model, (torch.zeros(3, 6),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, upload / "model.pt2")

    result = convert_network(upload, output, framework="pytorch")

    assert result.parity["passed"], result.parity
    assert result.signature.inputs[0].shape == ("batch", 6)
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).standard_normal((7, 6)).astype(np.float32)
    with torch.no_grad():
        expected = [value.numpy() for value in model(torch.from_numpy(x))]
    for produced, wanted in zip(session.run(None, {"x": x}), expected, strict=True):
        np.testing.assert_allclose(produced, wanted, rtol=1e-5, atol=1e-6)


class _ConvolutionThenSum(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        return self.conv(x).sum(dim=(2, 3)), x.shape[0]


def test_convert_network_pytorch_scripted_model_failing_says_what_its_code_raised(upload, output):
    torch.jit.save(torch.jit.script(_ConvolutionThenSum()), str(upload / "model.pt"))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            upload, output, framework="pytorch", input_spec=[{"name": "x", "dtype": "float32", "shape": ["batch", 6]}]
        )

    assert caught.value.reason is Reason.RUNTIME_ERROR
    assert caught.value.message.startswith(
        "model.pt fails on inputs shaped as input_spec declares {'x': [2, 6]}: RuntimeError: Expected 3D (unbatched) "
        "or 4D (batched) input to conv2d"
    )


def test_convert_network_pytorch_output_that_is_not_a_tensor_is_refused_naming_it(upload, output):
    torch.jit.save(torch.jit.script(_ConvolutionThenSum()), str(upload / "model.pt"))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            upload,
            output,
            framework="pytorch",
            input_spec=[{"name": "x", "dtype": "float32", "shape": ["batch", 3, 8, 8]}],
        )

    assert caught.value.reason is Reason.CONVERSION_ERROR
    assert caught.value.message.startswith("model.pt returns an int as 'output_1'; a served model returns tensors")


def test_conversion_report_has_the_same_shape_for_caffe_pytorch_and_tensorflow(tmp_path):
    # One report a caller reads the same way whatever was uploaded: the same keys, down to each parity figure.
    from functions.converter.convert import ConversionOptions
    from tests.unit.converter import caffe_zoo, models

    caffe_zoo.alexnet_shaped().write(tmp_path / "caffe")
    (tmp_path / "pytorch").mkdir()
    torch_zoo.save_torchscript(torch_zoo.BoxesAndScores().eval(), tmp_path / "pytorch" / "model.pt")
    (tmp_path / "tensorflow-1.x").mkdir()
    (tmp_path / "tensorflow-1.x" / "addition.pb").write_bytes(models.frozen_addition_graph())
    arguments: dict[str, dict] = {
        "caffe": {},
        "pytorch": {"input_spec": [{"name": "x", "dtype": "float32", "shape": ["batch", 6]}]},
        "tensorflow-1.x": {
            "input_spec": models.ADDITION_INPUT_SPEC,
            "options": ConversionOptions(node_name_mapping=models.ADDITION_MAPPING),
        },
    }

    reports = {
        framework: convert_network(
            tmp_path / framework, tmp_path / f"{framework}-output", framework=framework, **extra
        ).to_dict()
        for framework, extra in arguments.items()
    }

    def layout(report: dict) -> tuple:
        parity = report["parity"]
        return (
            sorted(report),
            sorted(report["model"]),
            sorted(report["signature"]),
            sorted(parity),
            sorted(parity["outputs"][0]),
            sorted(parity["cases"][0]),
            sorted(report["timings"]),
        )

    assert layout(reports["caffe"]) == layout(reports["pytorch"]) == layout(reports["tensorflow-1.x"])
    assert [report["format"] for report in reports.values()] == ["caffe", "torchscript", "frozen_graph"]
    assert all(report["parity"]["checked"] and report["parity"]["passed"] for report in reports.values())
