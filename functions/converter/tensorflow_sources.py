"""TensorFlow formats: load, freeze, convert with tf2onnx, and keep the original as the reference.

Every function here imports TensorFlow lazily: the rest of the converter (archives, format
detection, ONNX pass-through, parity maths) stays importable and testable without it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto

from functions.converter.errors import ConversionFailed, Reason, listing
from functions.converter.formats import LocatedModel, ModelFormat
from functions.converter.graphs import PLACEHOLDER_OPS, GraphIndex, split_tensor, tensor_name
from functions.converter.signature import NameMap, strip_port, unknown_tensor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requested:
    """A tensor name the network's declarations rely on, and where it was declared."""

    name: str
    where: str


@dataclass
class Requests:
    """What the declarations ask of the graph: inputs to feed (maybe cut points), outputs to expose."""

    inputs: list[Requested] = field(default_factory=list)
    outputs: list[Requested] = field(default_factory=list)
    node_name_mapping: dict[str, str] = field(default_factory=dict)
    input_hints: set[str] = field(default_factory=set)  # names known to be inputs (input_spec, test_input)
    signature: str | None = None  # conversion_options.signature: the SavedModel or TFLite signature to convert


class Reference:
    """Runs the original model: feeds and results keyed by ONNX names."""

    description = ""

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError


@dataclass
class Conversion:
    model: ModelProto
    names: NameMap
    reference: Reference | None
    source: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # ONNX inputs/outputs TensorFlow knew nothing about: tf2onnx declares them as scalars, and
    # ONNX cannot declare an unknown rank, so the signature says `null` until a spec tells.
    unknown_rank: set[str] = field(default_factory=set)


def tensorflow():
    """TensorFlow, imported on first use with its C++ logging turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def versions() -> dict[str, str]:
    import tf2onnx

    return {"tensorflow": tensorflow().__version__, "tf2onnx": tf2onnx.__version__}


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    converters: dict[ModelFormat, Callable[..., Conversion]] = {
        ModelFormat.KERAS: _convert_keras,
        ModelFormat.KERAS_H5: _convert_keras,
        ModelFormat.SAVED_MODEL: _convert_saved_model,
        ModelFormat.FROZEN_GRAPH: _convert_frozen_graph,
        ModelFormat.TFLITE: _convert_tflite,
    }
    return converters[located.format](located, requests, opset=opset, large_model=large_model)


# ---- Keras (.keras, .h5) -------------------------------------------------------------------------


def _convert_keras(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    tf = tensorflow()
    model = _load_keras(located)
    label = located.model_files[0]
    if not getattr(model, "inputs", None):
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"The Keras model in {label} has no defined inputs (a Sequential model saved before it was "
            "built); give it an Input layer and save it again.",
        )
    names = NameMap()
    input_names = list(model.input_names)
    for name, tensor in zip(input_names, model.inputs, strict=True):
        names.add_tensor(name, "input", [tensor.name])
    for requested in requests.inputs:
        if names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", input_names)

    output_names = list(model.output_names)
    for name, tensor in zip(output_names, model.outputs, strict=True):
        names.add_tensor(name, "output", [tensor.name])
    layers = {layer.name: layer for layer in model.layers}
    by_tensor = {}
    for layer in model.layers:
        output = getattr(layer, "output", None)
        if output is not None and not isinstance(output, list | tuple):
            by_tensor[output.name] = layer
            by_tensor[strip_port(output.name)] = layer
    extras = []
    for requested in requests.outputs:
        if names.resolve(requested.name, "output") is not None:
            continue
        layer = layers.get(requested.name) or by_tensor.get(requested.name) or by_tensor.get(f"{requested.name}:0")
        if layer is None or isinstance(getattr(layer, "output", None), list | tuple) or layer in extras:
            if layer is not None and layer in extras:
                names.add(requested.name, layer.name)
                continue
            raise unknown_tensor(
                requested.name,
                requested.where,
                "output",
                output_names + [name for name in layers if name not in output_names],
            )
        extras.append(layer)
        names.add_tensor(layer.name, "output", [requested.name, layer.output.name])
    if extras:
        model = tf.keras.Model(model.inputs, list(model.outputs) + [layer.output for layer in extras], name=model.name)
        output_names = list(model.output_names)

    signature = [
        tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
        for name, tensor in zip(input_names, model.inputs, strict=True)
    ]
    import tf2onnx

    try:
        with tf.device("/cpu:0"):
            onnx_model, storage = tf2onnx.convert.from_keras(
                model, input_signature=signature, opset=opset, large_model=large_model
            )
    except ConversionFailed:
        raise
    except Exception as error:  # noqa: BLE001 - tf2onnx raises anything from anywhere
        raise _conversion_error(error, opset) from None
    _inline_external_tensors(onnx_model, storage)
    return Conversion(
        model=onnx_model,
        names=names,
        reference=_KerasReference(model, input_names, output_names),
        source={"loader": "tf.keras.models.load_model", "converter": "tf2onnx.convert.from_keras"},
    )


def _load_keras(located: LocatedModel) -> Any:
    tf = tensorflow()
    label = located.model_files[0]
    if located.format is ModelFormat.KERAS_H5:
        _refuse_h5_lambda_layers(located.path, label)
    try:
        return tf.keras.models.load_model(str(located.path), compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises anything on a bad file
        text = str(error)
        if "safe_mode" in text or "Lambda" in text:
            raise ConversionFailed(
                Reason.UNSAFE_MODEL,
                f"{label} contains a Lambda layer, whose Python code would run on Tensorgate's servers; "
                "replace it with built-in layers or upload a SavedModel.",
                {"file": label},
            ) from None
        if "Unknown layer" in text or "custom_objects" in text or "Could not locate" in text:
            raise ConversionFailed(
                Reason.CONVERSION_ERROR,
                f"{label} uses custom Keras objects that are not available here ({_first_line(error)}); "
                "export the model as a SavedModel (model.export or tf.saved_model.save) and upload that.",
                {"file": label},
            ) from None
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} cannot be read as a Keras model: {_first_line(error)}",
            {"file": label},
        ) from None


def _refuse_h5_lambda_layers(path: Path, label: str) -> None:
    """Keras .h5 Lambda layers hold marshalled Python bytecode; loading one runs it."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
    except OSError as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable HDF5 file: {_first_line(error)}", {"file": label}
        ) from None
    if config is None:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} holds no Keras model (only weights?); save the whole model with model.save().",
            {"file": label},
        )
    text = config.decode() if isinstance(config, bytes) else str(config)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} has an unreadable model configuration.", {"file": label}
        ) from None
    lambdas = sorted(set(_lambda_layers(parsed)))
    if lambdas:
        raise ConversionFailed(
            Reason.UNSAFE_MODEL,
            f"{label} contains Lambda layers ({listing(lambdas)}), whose Python code would run on "
            "Tensorgate's servers; replace them with built-in layers or upload a SavedModel.",
            {"file": label, "layers": lambdas},
        )


def _lambda_layers(config: Any) -> list[str]:
    found: list[str] = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            found.append(str(config.get("config", {}).get("name", "?")))
        for value in config.values():
            found.extend(_lambda_layers(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_lambda_layers(value))
    return found


class _KerasReference(Reference):
    def __init__(self, model: Any, input_names: list[str], output_names: list[str]) -> None:
        self.model = model
        self.input_names = input_names
        self.output_names = output_names
        self.description = "the Keras model (model(x, training=False))"

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tf = tensorflow()
        arguments = [tf.constant(feeds[name]) for name in self.input_names]
        results = self.model(arguments if len(arguments) > 1 else arguments[0], training=False)
        if not isinstance(results, list | tuple):
            results = [results]
        by_name = {name: np.asarray(value) for name, value in zip(self.output_names, results, strict=True)}
        return {name: by_name[name] for name in outputs}


# ---- SavedModel ----------------------------------------------------------------------------------


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
            f"{label} is not a valid SavedModel protobuf: {_first_line(error)}",
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


def _choose_signature(signatures: Collection[str], label: str, required: bool, requested: str | None) -> str | None:
    """The requested signature, else `serving_default`, else the only one; None if there is none to need."""
    if requested is not None:
        if requested in signatures:
            return requested
        raise ConversionFailed(
            Reason.INVALID_OPTIONS,
            f"conversion_options.signature {requested!r} is not a signature of {label}; "
            f"it has {listing(list(signatures)) if signatures else 'none'}.",
            {"field": "conversion_options.signature", "signatures": list(signatures)},
        )
    if "serving_default" in signatures:
        return "serving_default"
    if len(signatures) == 1:
        return next(iter(signatures))
    if not signatures and not required:
        return None
    if not signatures:
        advice = "export the model with a serving_default signature"
    else:
        advice = "name the one to convert with conversion_options.signature"
    raise ConversionFailed(
        Reason.CONVERSION_ERROR,
        f"{label} has {'no serving signature' if not signatures else 'several signatures'} "
        f"({listing(list(signatures))}) and none is 'serving_default'; {advice}.",
        {"signatures": list(signatures)},
    )


def _convert_saved_model(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    label = located.model_files[0]
    info = _read_saved_model(located.path, label)
    if info.tf2 and large_model:
        # Session freezing and grappler serialise the graph, which protobuf caps at 2 GB; tf2onnx's
        # large-model freezing of the signature function is the path that survives that.
        return _convert_saved_model_v2(located, requests, info, opset=opset, large_model=large_model)
    return _convert_saved_model_in_session(located, requests, info, opset=opset, large_model=large_model)


def _convert_saved_model_v2(
    located: LocatedModel, requests: Requests, info: _SavedModelInfo, *, opset: int, large_model: bool
) -> Conversion:
    tf = tensorflow()
    label = located.model_files[0]
    signature_name = _choose_signature(info.signatures, label, required=True, requested=requests.signature)
    assert signature_name is not None
    try:
        loaded = tf.saved_model.load(str(located.path), tags=info.tags or ["serve"])
    except Exception as error:  # noqa: BLE001 - TensorFlow raises many types for bad files
        raise _load_error(error, label) from None
    function = loaded.signatures[signature_name]
    _, keyword_specs = function.structured_input_signature
    input_keys = sorted(keyword_specs)
    placeholders = [t.name for t in function.inputs[: len(input_keys)]]
    output_keys = sorted(function.structured_outputs)
    output_tensors = [t.name for t in function.outputs]
    graph_def = _freeze_function(function, large_model)
    index = GraphIndex(graph_def)
    proto_names = info.signatures.get(signature_name, {"inputs": {}, "outputs": {}})

    plan = _GraphPlan(index)
    for key, placeholder in zip(input_keys, placeholders, strict=True):
        plan.add_input(placeholder, key, [proto_names["inputs"].get(key, ""), keyword_specs[key].name or ""])
    for key, tensor in zip(output_keys, output_tensors, strict=True):
        plan.add_output(tensor, key, [proto_names["outputs"].get(key, "")])
    plan.apply_requests(requests, replace_inputs=bool(requests.inputs))

    signature_outputs = dict(zip(output_keys, output_tensors, strict=True))
    frozen_reference = _SessionReference.from_graph_def(graph_def, plan, "the frozen SavedModel graph (TensorFlow)")
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
    model, unknown_rank = _convert_graph_def(graph_def, plan, opset=opset, large_model=large_model, name=label)
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
    signature_name = _choose_signature(
        info.signatures, label, required=not has_declared_io, requested=requests.signature
    )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, info.tags or ["serve"], str(located.path))
    except Exception as error:  # noqa: BLE001 - TensorFlow raises many types for bad files
        session.close()
        raise _load_error(error, label) from None
    plan = _GraphPlan(GraphIndex(graph.as_graph_def(add_shapes=True)))
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
        if frozen.library.function and not large_model:
            frozen = _inline_functions(frozen, plan.input_tensors + plan.output_tensors)
    except Exception as error:  # noqa: BLE001
        raise _conversion_error(error, opset) from None
    top_level = set(plan.input_tensors + plan.output_tensors)
    plan.index = GraphIndex(frozen)
    plan.refresh_aliases()
    plan.apply_requests(pending, replace_inputs=False)
    if replace_inputs:
        plan.add_needed_placeholders()
    plan.require_outputs(label)
    internal = {tensor for tensor in plan.input_tensors + plan.output_tensors if tensor not in top_level}
    description = "the SavedModel's serving graph run in a TensorFlow session (as TensorFlow Serving loads it)"
    frozen_reference = _SessionReference.from_graph_def(frozen, plan, description + ", frozen")
    if any(tensor in internal for tensor in plan.input_tensors):
        reference: Reference = frozen_reference
    else:
        reference = _SessionReference(session, plan, description)
        reference.internal = {name for tensor, name in plan.outputs if tensor in internal}
        reference.fallback = frozen_reference
    model, unknown_rank = _convert_graph_def(frozen, plan, opset=opset, large_model=large_model, name=label)
    return Conversion(
        model=model,
        names=plan.names,
        reference=reference,
        source={"saved_model": "tf2" if info.tf2 else "tf1", "signature": signature_name, "tags": info.tags},
        notes=plan.notes,
        unknown_rank=unknown_rank,
    )


def _inline_functions(graph_def: Any, fetches: list[str]) -> Any:
    """Inline the function calls of a frozen graph (grappler's function optimiser alone).

    A TF 2.x signature is one call to a function holding every layer; inlined, its nodes are
    named `StatefulPartitionedCall/.../<layer>/<op>` and can be found and exposed as outputs.
    """
    tf = tensorflow()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.optimizers[:] = ["function"]
    config.graph_options.rewrite_options.min_graph_nodes = -1
    with tf.Graph().as_default():
        meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph_def)
    fetch_collection = meta_graph_pb2.CollectionDef()
    fetch_collection.node_list.value.extend(fetches)
    meta_graph.collection_def["train_op"].CopyFrom(fetch_collection)
    return tf_optimizer.OptimizeGraph(config, meta_graph)


def _freeze_function(function: Any, large_model: bool) -> Any:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tf2onnx import tf_loader

    try:
        if large_model:
            graph_def = tf_loader.convert_variables_to_constants_large_model(function)
        else:
            frozen = convert_variables_to_constants_v2(function, lower_control_flow=False, aggressive_inlining=True)
            graph_def = frozen.graph.as_graph_def(add_shapes=True)
    except Exception as error:  # noqa: BLE001
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"TensorFlow could not freeze the model's variables into constants: {_first_line(error)}",
        ) from None
    return tf_loader.fix_freezing_errors_part2(graph_def)


class _SignatureReference(Reference):
    """The SavedModel's own signature function; intermediate tensors come from the frozen graph."""

    def __init__(
        self,
        function: Any,
        inputs: dict[str, str],
        outputs: dict[str, str],
        signature_name: str,
        fallback: _SessionReference,
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


# ---- Frozen GraphDef (Neuropod style) -----------------------------------------------------------


def _convert_frozen_graph(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    tf = tensorflow()
    label = located.model_files[0]
    graph_def = _read_graph_def(located.path, label)
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
    except Exception as error:  # noqa: BLE001
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} cannot be imported as a TensorFlow graph: {_first_line(error)}",
            {"file": label},
        ) from None
    variables = [node.name for node in graph_def.node if node.op in ("VariableV2", "VarHandleOp")]
    if variables:
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"{label} is not frozen: it still has variables ({listing(variables, 5)}); freeze it "
            "(variables to constants) or upload the SavedModel instead.",
            {"variables": variables[:50]},
        )
    index = GraphIndex(graph_def)
    plan = _GraphPlan(index)
    declared_inputs = {item.name for item in requests.inputs} | requests.input_hints
    for key, target in requests.node_name_mapping.items():
        found = index.find(target)
        if found is None:
            raise unknown_tensor(target, f"node_name_mapping[{key!r}]", "tensor", index.example_names())
        if index.op(found) in PLACEHOLDER_OPS or key in declared_inputs or target in declared_inputs:
            plan.add_input(found, key, [target])
        else:
            plan.add_output(found, key, [target])
    plan.apply_requests(requests, replace_inputs=False)
    if not plan.outputs:
        for sink in index.sinks():
            plan.add_output(sink, strip_port(sink), [])
        plan.notes.append(
            "No outputs were named (node_name_mapping or postprocessings); the graph's final tensors were used: "
            + ", ".join(plan.output_tensors)
        )
    plan.add_needed_placeholders()
    session = tf.compat.v1.Session(graph=graph)
    reference = _SessionReference(session, plan, "the frozen graph run in a TensorFlow session")
    model, unknown_rank = _convert_graph_def(graph_def, plan, opset=opset, large_model=large_model, name=label)
    return Conversion(
        model=model,
        names=plan.names,
        reference=reference,
        source={"graph": "frozen"},
        notes=plan.notes,
        unknown_rank=unknown_rank,
    )


def _read_graph_def(path: Path, label: str) -> Any:
    from google.protobuf import message, text_format
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    content = path.read_bytes()
    try:
        graph_def.ParseFromString(content)
        if graph_def.node:
            return graph_def
    except message.DecodeError:
        pass
    try:
        text_format.Parse(content.decode("utf-8"), graph_def)
        if graph_def.node:
            return graph_def
    except (text_format.ParseError, UnicodeDecodeError):
        pass
    raise ConversionFailed(
        Reason.CORRUPT_FILE,
        f"{label} is not a TensorFlow GraphDef (neither binary nor text protobuf with nodes).",
        {"file": label},
    )


# ---- shared graph machinery ----------------------------------------------------------------------


class _GraphPlan:
    """Which graph tensors become ONNX inputs and outputs, under which ONNX names."""

    def __init__(self, index: GraphIndex) -> None:
        self.index = index
        self.inputs: list[tuple[str, str]] = []  # (graph tensor, onnx name)
        self.outputs: list[tuple[str, str]] = []
        self.cuts: list[str] = []
        self.names = NameMap()
        self.notes: list[str] = []
        self.replaced_inputs: dict[str, str] = {}

    @property
    def input_tensors(self) -> list[str]:
        return [tensor for tensor, _ in self.inputs]

    @property
    def output_tensors(self) -> list[str]:
        return [tensor for tensor, _ in self.outputs]

    def add_input(self, tensor: str, onnx_name: str, aliases: list[str]) -> None:
        if tensor in self.input_tensors:
            self.names.add(onnx_name, dict(self.inputs)[tensor])
            return
        if self.index.op(tensor) not in PLACEHOLDER_OPS:
            self.cuts.append(tensor)
        self.inputs.append((tensor, onnx_name))
        self.names.add_tensor(onnx_name, "input", [*aliases, tensor])

    def add_output(self, tensor: str, onnx_name: str, aliases: list[str]) -> None:
        same = self.index.same_tensor(tensor)
        for existing, existing_name in self.outputs:
            if existing in same:
                for alias in (onnx_name, *aliases):
                    self.names.add(alias, existing_name)
                return
        self.outputs.append((tensor, onnx_name))
        chain = sorted(name for name in same if not name.startswith("Func/"))
        shorter = [short for name in chain for short in self.index.short_names(name)]
        self.names.add_tensor(onnx_name, "output", [*aliases, tensor, *chain, *shorter])

    def apply_requests(self, requests: Requests, *, replace_inputs: bool, defer_unknown: bool = False) -> Requests:
        """Resolve declared names; unknown inputs become cut points, unknown outputs extra outputs.

        With `replace_inputs`, the declared inputs replace the signature's (a TF 1.x SavedModel
        fed after its decoding stage, as the v0.7 example does). With `defer_unknown`, names not
        in this graph are returned for a later look in another (the inlined frozen graph).
        """
        pending = Requests()
        if replace_inputs:
            self.replaced_inputs = dict(self.inputs)
            kept: list[tuple[str, str]] = []
            for requested in requests.inputs:
                onnx_name = self.names.resolve(requested.name, "input")
                if onnx_name is not None:
                    kept.extend(item for item in self.inputs if item[1] == onnx_name and item not in kept)
            self.inputs = kept
            self.cuts = [tensor for tensor, _ in kept if self.index.op(tensor) not in PLACEHOLDER_OPS]
        self._resolve_requested(
            requests.inputs,
            "input",
            pending.inputs if defer_unknown else None,
            lambda: [name for _, name in self.inputs] + self.index.placeholders(),
            self.add_input,
        )
        self._resolve_requested(
            requests.outputs,
            "output",
            pending.outputs if defer_unknown else None,
            lambda: [name for _, name in self.outputs] + self.index.example_names(),
            self.add_output,
        )
        if replace_inputs and not defer_unknown:
            self.add_needed_placeholders()
        return pending

    def _resolve_requested(
        self,
        requested_tensors: list[Requested],
        role: str,
        pending: list[Requested] | None,
        available: Callable[[], list[str]],
        add: Callable[[str, str, list[str]], None],
    ) -> None:
        """Add each requested tensor not named yet; one this graph lacks is deferred to `pending`, or refused."""
        for requested in requested_tensors:
            if self.names.resolve(requested.name, role) is not None:
                continue
            found = self.index.find(requested.name)
            if found is None and pending is not None:
                pending.append(requested)
            elif found is None:
                raise unknown_tensor(requested.name, requested.where, role, available())
            else:
                add(found, requested.name, [])

    def refresh_aliases(self) -> None:
        """Alias the outputs by the names they have in the current index (after inlining)."""
        for tensor, onnx_name in self.outputs:
            if not self.index.has_tensor(tensor):
                continue
            chain = sorted(name for name in self.index.same_tensor(tensor) if not name.startswith("Func/"))
            for alias in [*chain, *(short for name in chain for short in self.index.short_names(name))]:
                self.names.add(alias, onnx_name)

    def add_needed_placeholders(self) -> None:
        """Placeholders still feeding the outputs once the graph is cut must stay inputs."""
        needed = self.index.upstream_placeholders(self.output_tensors, self.input_tensors)
        for tensor in needed:
            if self.index.op(tensor) == "PlaceholderWithDefault":
                continue
            if tensor not in self.input_tensors:
                onnx_name = self.replaced_inputs.get(tensor, tensor)
                self.add_input(tensor, onnx_name, [strip_port(tensor)])

    def require_outputs(self, label: str) -> None:
        if not self.outputs:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{label} has no serving signature, so name the output tensors in postprocessings "
                "(tensors_output.tensors).",
            )
        if not self.inputs:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{label} has no serving signature, so name the input tensors in preprocessing (inputs[].tensor_name).",
            )


def _convert_graph_def(
    graph_def: Any, plan: _GraphPlan, *, opset: int, large_model: bool, name: str
) -> tuple[ModelProto, set[str]]:
    tf = tensorflow()
    from tf2onnx import convert as tf2onnx_convert
    from tf2onnx import tf_loader

    input_names = plan.input_tensors
    output_names = plan.output_tensors
    renames = {tensor: onnx_name for tensor, onnx_name in (*plan.inputs, *plan.outputs)}
    try:
        with tf.device("/cpu:0"):
            if not large_model:
                with tf.Graph().as_default():
                    graph_def = tf_loader.tf_optimize(input_names, output_names, graph_def)
            # tf2onnx's public from_graph_def re-imports and re-freezes the graph, which a frozen
            # graph past 2 GB cannot survive; its common path is what every public entry point uses.
            model, storage = tf2onnx_convert._convert_common(  # noqa: SLF001
                graph_def,
                name=name,
                continue_on_error=True,
                opset=opset,
                input_names=input_names,
                output_names=output_names,
                large_model=large_model,
                tensors_to_rename=renames,
            )
    except ConversionFailed:
        raise
    except Exception as error:  # noqa: BLE001 - tf2onnx raises anything from anywhere
        raise _conversion_error(error, opset) from None
    _inline_external_tensors(model, storage)
    return model, _unknown_ranks(model, graph_def, renames)


def _unknown_ranks(model: ModelProto, graph_def: Any, renames: Mapping[str, str]) -> set[str]:
    """ONNX inputs/outputs declared as scalars by tf2onnx because TensorFlow did not know their rank."""
    suspicious = [
        value
        for value in (*model.graph.input, *model.graph.output)
        if value.type.tensor_type.HasField("shape") and not value.type.tensor_type.shape.dim
    ]
    if not suspicious:
        return set()
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    by_onnx_name = {onnx_name: tensor for tensor, onnx_name in renames.items()}
    unknown = set()
    for value in suspicious:
        tensor = by_onnx_name.get(value.name)
        if tensor is None:
            continue
        try:
            rank = graph.get_tensor_by_name(tensor_name(tensor)).shape.rank
        except (KeyError, ValueError):
            continue
        if rank is None:
            unknown.add(value.name)
    return unknown


class _SessionReference(Reference):
    """A TensorFlow 1.x-style session over the original graph (feeds may be cut points)."""

    def __init__(self, session: Any, plan: _GraphPlan, description: str) -> None:
        self._session = session
        self._graph_def: Any = None
        # Outputs that exist only inside inlined functions, computed by `fallback` (the frozen graph).
        self.internal: set[str] = set()
        self.fallback: _SessionReference | None = None
        self.feeds = {onnx_name: tensor for tensor, onnx_name in plan.inputs}
        self.fetches = {onnx_name: tensor for tensor, onnx_name in plan.outputs}
        self.description = description

    @classmethod
    def from_graph_def(cls, graph_def: Any, plan: _GraphPlan, description: str) -> _SessionReference:
        """A session over `graph_def`, imported only if something asks it to run."""
        reference = cls(None, plan, description)
        reference._graph_def = graph_def
        return reference

    @property
    def session(self) -> Any:
        if self._session is None:
            tf = tensorflow()
            graph = tf.Graph()
            with graph.as_default():
                tf.import_graph_def(self._graph_def, name="")
            self._session = tf.compat.v1.Session(graph=graph)
        return self._session

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        own = [name for name in outputs if name not in self.internal]
        feed_dict = {self.feeds[name]: value for name, value in feeds.items() if name in self.feeds}
        values = self.session.run([self.fetches[name] for name in own], feed_dict=feed_dict) if own else []
        found = {name: np.asarray(value) for name, value in zip(own, values, strict=True)}
        rest = [name for name in outputs if name in self.internal]
        if rest and self.fallback is not None:
            found.update(self.fallback.run(feeds, rest))
        return {name: found[name] for name in outputs}


# ---- TFLite ---------------------------------------------------------------------------------------


def _convert_tflite(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    tf = tensorflow()
    import tf2onnx

    label = located.model_files[0]
    try:
        interpreter = tf.lite.Interpreter(model_path=str(located.path))
    except Exception as error:  # noqa: BLE001
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable TFLite model: {_first_line(error)}", {"file": label}
        ) from None
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    keys_by_tensor: dict[str, str] = {}
    signatures = interpreter.get_signature_list()
    if requests.signature is not None:
        chosen = _choose_signature(signatures, label, required=True, requested=requests.signature)
    else:  # several signatures and none requested: the tensors keep their own names
        chosen = next(iter(signatures)) if len(signatures) == 1 else None
    if chosen is not None:
        runner = interpreter.get_signature_runner(chosen)
        by_index = {detail["index"]: detail["name"] for detail in (*input_details, *output_details)}
        for key, detail in (*runner.get_input_details().items(), *runner.get_output_details().items()):
            if detail["index"] in by_index:
                keys_by_tensor[by_index[detail["index"]]] = key
    try:
        with tf.device("/cpu:0"):
            model, storage = tf2onnx.convert.from_tflite(str(located.path), opset=opset, large_model=large_model)
    except Exception as error:  # noqa: BLE001
        raise _conversion_error(error, opset) from None
    _inline_external_tensors(model, storage)
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


# ---- errors -------------------------------------------------------------------------------------


def _inline_external_tensors(model: ModelProto, storage: Any) -> None:
    """tf2onnx's large-model output refers to an in-memory tensor store: put the bytes back."""
    if storage is None or not getattr(storage, "name_to_tensor_data", None):
        return
    from onnx import external_data_helper

    for tensor in external_data_helper._get_all_tensors(model):  # noqa: SLF001 - onnx has no public walker
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next(entry.value for entry in tensor.external_data if entry.key == "location")
        tensor.raw_data = storage.name_to_tensor_data[location]
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def _load_error(error: BaseException, label: str) -> ConversionFailed:
    text = str(error)
    if "variables" in text and ("not found" in text.lower() or "no such file" in text.lower() or "Failed to" in text):
        return ConversionFailed(
            Reason.MISSING_FILE,
            f"{label}'s variables could not be loaded ({_first_line(error)}); upload variables.index and "
            "variables.data-* with it.",
            {"file": label},
        )
    return ConversionFailed(
        Reason.CORRUPT_FILE, f"{label} cannot be loaded as a SavedModel: {_first_line(error)}", {"file": label}
    )


def _conversion_error(error: BaseException, opset: int) -> ConversionFailed:
    return ConversionFailed(
        Reason.CONVERSION_ERROR,
        f"tf2onnx failed to convert the model at opset {opset}: {_first_line(error)}",
        {"opset": opset, "error": f"{type(error).__name__}: {str(error)[:2000]}"},
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


def split_name(name: str) -> tuple[str, int]:
    return split_tensor(name)
