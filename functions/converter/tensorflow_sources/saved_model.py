"""SavedModels (TF 1.x and TF 2.x): the serving signature, frozen and converted.

TF 2.x SavedModels load in a TensorFlow session as TensorFlow Serving loads them (no Python
objects revived: fast). A SavedModel whose checkpoint the session cannot restore into the
variables its functions read (Keras 3 models saved with `tf.saved_model.save` track each variable
twice) goes through `tf.saved_model.load` and the signature function instead, as large models do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.formats import LocatedModel
from functions.converter.graphs import GraphIndex, tensor_name
from functions.converter.tensorflow_sources.common import Conversion, Reference, Requests
from functions.converter.tensorflow_sources.tf_graph import (
    GraphPlan,
    SessionReference,
    choose_signature,
    conversion_error,
    convert_graph_def,
    first_line,
    freeze_function,
    inline_functions,
    load_error,
    tensorflow,
)


@dataclass
class _SavedModelInfo:
    tf2: bool
    tags: list[str]
    signatures: dict[str, dict[str, dict[str, str]]]  # name → {"inputs"/"outputs": {key: tensor name}}


def _read_saved_model(directory: Path, label: str) -> _SavedModelInfo:
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary = directory / "saved_model.pb"
    try:
        if binary.exists():
            proto.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse((directory / "saved_model.pbtxt").read_text(encoding="utf-8"), proto)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} is not a valid SavedModel protobuf: {first_line(error)}",
            {"file": label},
        ) from None
    if not proto.meta_graphs:
        raise ConversionFailed(Reason.CORRUPT_FILE, f"{label} holds no MetaGraph.", {"file": label})
    meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), proto.meta_graphs[0])
    signatures = {}
    for name, definition in meta.signature_def.items():
        if name.startswith("_"):
            continue
        signatures[name] = {
            "inputs": {key: info.name for key, info in definition.inputs.items()},
            "outputs": {key: info.name for key, info in definition.outputs.items()},
        }
    return _SavedModelInfo(
        tf2=len(meta.object_graph_def.nodes) > 0, tags=list(meta.meta_info_def.tags), signatures=signatures
    )


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    label = located.model_files[0]
    info = _read_saved_model(located.path, label)
    if info.tf2 and large_model:
        # Session freezing and grappler serialise the graph, which protobuf caps at 2 GB; tf2onnx's
        # large-model freezing of the signature function is the path that survives that.
        return _convert_saved_model_v2(located, requests, info, opset=opset, large_model=large_model)
    try:
        return _convert_saved_model_in_session(located, requests, info, opset=opset, large_model=large_model)
    except _SessionRestoreFailed:
        return _convert_saved_model_v2(located, requests, info, opset=opset, large_model=large_model)


class _SessionRestoreFailed(Exception):
    """The session restored the checkpoint but the serving functions read variables it did not fill."""


def _convert_saved_model_v2(
    located: LocatedModel, requests: Requests, info: _SavedModelInfo, *, opset: int, large_model: bool
) -> Conversion:
    tf = tensorflow()
    label = located.model_files[0]
    signature_name = choose_signature(info.signatures, label, required=True, requested=requests.signature)
    assert signature_name is not None
    try:
        loaded = tf.saved_model.load(str(located.path), tags=info.tags or ["serve"])
    except Exception as error:  # noqa: BLE001 - TensorFlow raises many types for bad files
        raise load_error(error, label) from None
    function = loaded.signatures[signature_name]
    _, keyword_specs = function.structured_input_signature
    input_keys = sorted(keyword_specs)
    placeholders = [t.name for t in function.inputs[: len(input_keys)]]
    output_keys = sorted(function.structured_outputs)
    output_tensors = [t.name for t in function.outputs]
    graph_def = freeze_function(function, large_model)
    index = GraphIndex(graph_def)
    proto_names = info.signatures.get(signature_name, {"inputs": {}, "outputs": {}})

    plan = GraphPlan(index)
    for key, placeholder in zip(input_keys, placeholders, strict=True):
        plan.add_input(placeholder, key, [proto_names["inputs"].get(key, ""), keyword_specs[key].name or ""])
    for key, tensor in zip(output_keys, output_tensors, strict=True):
        plan.add_output(tensor, key, [proto_names["outputs"].get(key, "")])
    try:
        plan.apply_requests(requests, replace_inputs=bool(requests.inputs))
    except ConversionFailed as error:
        if error.reason is Reason.UNKNOWN_TENSOR and input_keys == ["inputs"] and error.details.get("role") == "input":
            # Keras 3's tf.saved_model.save names a model's one input `inputs`, whatever its Input layer says.
            raise ConversionFailed(
                error.reason,
                error.message.removesuffix(".") + "; a Keras 3 model saved with tf.saved_model.save names its "
                "input 'inputs': use that name, or export with model.export() to keep the Input layer's name.",
                error.details,
            ) from None
        raise

    signature_outputs = dict(zip(output_keys, output_tensors, strict=True))
    frozen_reference = SessionReference.from_graph_def(graph_def, plan, "the frozen SavedModel graph (TensorFlow)")
    if plan.cuts or sorted(name for _, name in plan.inputs) != input_keys:
        reference: Reference = frozen_reference
    else:
        reference = _SignatureReference(
            function,
            dict(zip(input_keys, input_keys, strict=True)),
            signature_outputs,
            signature_name,
            frozen_reference,
        )
    model, unknown_rank = convert_graph_def(graph_def, plan, opset=opset, large_model=large_model, name=label)
    return Conversion(
        model=model,
        names=plan.names,
        reference=reference,
        source={"saved_model": "tf2", "signature": signature_name, "tags": info.tags},
        notes=plan.notes,
        unknown_rank=unknown_rank,
    )


def _convert_saved_model_in_session(
    located: LocatedModel, requests: Requests, info: _SavedModelInfo, *, opset: int, large_model: bool
) -> Conversion:
    """Load the MetaGraph in a session, as TensorFlow Serving does, for TF 1.x and 2.x SavedModels.

    Much faster than `tf.saved_model.load` (no Keras objects are revived: ResNet50 loads in
    1.5 s instead of 13 s). Names are resolved on the top-level graph first (TF 1.x graphs), then
    on the frozen graph with its functions inlined (the layers inside a TF 2.x signature).
    """
    tf = tensorflow()
    label = located.model_files[0]
    has_declared_io = bool(requests.inputs) and bool(requests.outputs)
    signature_name = choose_signature(
        info.signatures, label, required=not has_declared_io, requested=requests.signature
    )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, info.tags or ["serve"], str(located.path))
    except Exception as error:  # noqa: BLE001 - TensorFlow raises many types for bad files
        session.close()
        raise load_error(error, label) from None
    plan = GraphPlan(GraphIndex(graph.as_graph_def(add_shapes=True)))
    if signature_name is not None:
        definition = info.signatures[signature_name]
        for key, name in sorted(definition["inputs"].items()):
            plan.add_input(tensor_name(name), key, [])
        for key, name in sorted(definition["outputs"].items()):
            plan.add_output(tensor_name(name), key, [])
    replace_inputs = bool(requests.inputs)
    pending = plan.apply_requests(requests, replace_inputs=replace_inputs, defer_unknown=True)
    if not plan.outputs and not pending.outputs:
        plan.require_outputs(label)
    from tf2onnx import tf_loader

    try:
        with graph.as_default():
            frozen = tf_loader.freeze_session(session, input_names=plan.input_tensors, output_names=plan.output_tensors)
    except Exception as error:  # noqa: BLE001
        session.close()
        if info.tf2 and "Could not find variable" in str(error):
            raise _SessionRestoreFailed from None
        raise conversion_error(error, opset) from None
    try:
        if frozen.library.function and not large_model:
            frozen = inline_functions(frozen, plan.input_tensors + plan.output_tensors)
    except Exception as error:  # noqa: BLE001
        raise conversion_error(error, opset) from None
    top_level = set(plan.input_tensors + plan.output_tensors)
    plan.index = GraphIndex(frozen)
    plan.refresh_aliases()
    plan.apply_requests(pending, replace_inputs=False)
    if replace_inputs:
        plan.add_needed_placeholders()
    plan.require_outputs(label)
    internal = {tensor for tensor in plan.input_tensors + plan.output_tensors if tensor not in top_level}
    description = "the SavedModel's serving graph run in a TensorFlow session (as TensorFlow Serving loads it)"
    frozen_reference = SessionReference.from_graph_def(frozen, plan, description + ", frozen")
    if any(tensor in internal for tensor in plan.input_tensors):
        reference: Reference = frozen_reference
    else:
        reference = SessionReference(session, plan, description)
        reference.internal = {name for tensor, name in plan.outputs if tensor in internal}
        reference.fallback = frozen_reference
    model, unknown_rank = convert_graph_def(frozen, plan, opset=opset, large_model=large_model, name=label)
    return Conversion(
        model=model,
        names=plan.names,
        reference=reference,
        source={"saved_model": "tf2" if info.tf2 else "tf1", "signature": signature_name, "tags": info.tags},
        notes=plan.notes,
        unknown_rank=unknown_rank,
    )


class _SignatureReference(Reference):
    """The SavedModel's own signature function; intermediate tensors come from the frozen graph."""

    def __init__(
        self,
        function: Any,
        inputs: dict[str, str],
        outputs: dict[str, str],
        signature_name: str,
        fallback: SessionReference,
    ) -> None:
        self.function = function
        self.inputs = inputs
        self.outputs = outputs
        self.fallback = fallback
        self.description = f"the SavedModel signature {signature_name!r} (TensorFlow)"

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tf = tensorflow()
        arguments = {key: tf.constant(feeds[onnx_name]) for key, onnx_name in self.inputs.items()}
        results = self.function(**arguments)
        found = {key: np.asarray(results[key]) for key in self.outputs if key in outputs}
        rest = [name for name in outputs if name not in found]
        if rest:
            found.update(self.fallback.run(feeds, rest))
        return {name: found[name] for name in outputs}
