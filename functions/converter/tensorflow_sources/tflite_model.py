"""TFLite flatbuffers: converted by tf2onnx, compared with the TFLite interpreter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.formats import LocatedModel
from functions.converter.signature import NameMap, unknown_tensor
from functions.converter.tensorflow_sources.common import Conversion, Reference, Requests
from functions.converter.tensorflow_sources.tf_graph import (
    choose_signature,
    conversion_error,
    first_line,
    inline_external_tensors,
    tensorflow,
)


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    tf = tensorflow()
    import tf2onnx

    label = located.model_files[0]
    try:
        interpreter = tf.lite.Interpreter(model_path=str(located.path))
    except Exception as error:  # noqa: BLE001
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable TFLite model: {first_line(error)}", {"file": label}
        ) from None
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    keys_by_tensor: dict[str, str] = {}
    signatures = interpreter.get_signature_list()
    if requests.signature is not None:
        chosen = choose_signature(signatures, label, required=True, requested=requests.signature)
    else:  # several signatures and none requested: the tensors keep their own names
        chosen = next(iter(signatures)) if len(signatures) == 1 else None
    if chosen is not None:
        runner = interpreter.get_signature_runner(chosen)
        by_index = {detail["index"]: detail["name"] for detail in (*input_details, *output_details)}
        for key, detail in (*runner.get_input_details().items(), *runner.get_output_details().items()):
            if detail["index"] in by_index:
                keys_by_tensor[by_index[detail["index"]]] = key
    from functions.converter.tensorflow_sources import tflite_gelu  # noqa: F401 - registers TFLite's GELU

    try:
        with tf.device("/cpu:0"):
            model, storage = tf2onnx.convert.from_tflite(str(located.path), opset=opset, large_model=large_model)
    except Exception as error:  # noqa: BLE001
        raise conversion_error(error, opset) from None
    inline_external_tensors(model, storage)
    names = NameMap()
    renames: dict[str, str] = {}
    for role, details in (("input", input_details), ("output", output_details)):
        for detail in details:
            onnx_name = keys_by_tensor.get(detail["name"], detail["name"])
            renames[detail["name"]] = onnx_name
            names.add_tensor(onnx_name, role, [detail["name"]])
    from functions.converter.onnx_model import rename_tensors

    rename_tensors(model, renames)
    for requested in requests.inputs:
        if names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", names.names("input"))
    for requested in requests.outputs:
        if names.resolve(requested.name, "output") is None:
            raise unknown_tensor(
                requested.name,
                requested.where + " (a TFLite model exposes only its own outputs)",
                "output",
                names.names("output"),
            )
    reference = _TFLiteReference(
        located.path,
        {renames[d["name"]]: d["index"] for d in input_details},
        {renames[d["name"]]: d["index"] for d in output_details},
    )
    return Conversion(model=model, names=names, reference=reference, source={"tflite": True})


class _TFLiteReference(Reference):
    def __init__(self, path: Path, inputs: dict[str, int], outputs: dict[str, int]) -> None:
        self.path = path
        self.inputs = inputs
        self.outputs = outputs
        self.description = "the TFLite interpreter"

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tf = tensorflow()
        interpreter = tf.lite.Interpreter(model_path=str(self.path))
        for name, index in self.inputs.items():
            interpreter.resize_tensor_input(index, list(feeds[name].shape), strict=False)
        interpreter.allocate_tensors()
        for name, index in self.inputs.items():
            interpreter.set_tensor(index, feeds[name])
        interpreter.invoke()
        return {name: np.array(interpreter.get_tensor(self.outputs[name])) for name in outputs}
