"""Keras files (.keras, .h5): read by the Keras that wrote them, converted through the frozen graph.

A file records the Keras version that saved it (`metadata.json` in a `.keras` zip, the
`keras_version` attribute of an `.h5`): Keras 3 files load with `keras`, Keras 2 files with
`tf_keras`, the Keras 2 that TensorFlow 2.16 and later keep installable. Either way the model is
traced into one TensorFlow function, frozen, and converted by the path SavedModels take, so
ONNX names, layer names and graph rewrites behave the same for every Keras.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from functions.converter.errors import ConversionFailed, Reason, listing
from functions.converter.formats import LocatedModel, ModelFormat
from functions.converter.graphs import GraphIndex
from functions.converter.signature import strip_port, unknown_tensor
from functions.converter.tensorflow_sources.common import Conversion, Reference, Requests
from functions.converter.tensorflow_sources.tf_graph import (
    GraphPlan,
    convert_graph_def,
    first_line,
    freeze_function,
    tensorflow,
)


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    tf = tensorflow()
    label = located.model_files[0]
    major = keras_major_version(located)
    api = _keras_api(major)
    model = _load_keras(located, api)
    if not getattr(model, "inputs", None):
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"The Keras model in {label} has no defined inputs (a Sequential model saved before it was "
            "built); give it an Input layer and save it again.",
        )
    input_names = [_layer_name(tensor) for tensor in model.inputs]
    output_names = [_layer_name(tensor) for tensor in model.outputs]
    layers = {layer.name: layer for layer in model.layers}
    by_tensor = {}
    for layer in model.layers:
        output = _single_output(layer)
        if output is not None:
            by_tensor[output.name] = layer
            by_tensor[strip_port(output.name)] = layer
    extras: list[Any] = []
    aliases: dict[str, list[str]] = {name: [] for name in output_names}
    graph_requests = Requests(inputs=[], outputs=[])
    for requested in requests.outputs:
        if requested.name in aliases or any(requested.name in known for known in aliases.values()):
            continue
        layer = layers.get(requested.name) or by_tensor.get(requested.name) or by_tensor.get(f"{requested.name}:0")
        if layer is None or _single_output(layer) is None:
            graph_requests.outputs.append(requested)  # maybe an op inside a layer: looked up in the graph
            continue
        if layer.name in aliases:
            aliases[layer.name].append(requested.name)
            continue
        extras.append(layer)
        aliases[layer.name] = [requested.name] if requested.name != layer.name else []
    if extras:
        model = api.Model(model.inputs, list(model.outputs) + [layer.output for layer in extras], name=model.name)
    onnx_outputs = output_names + [layer.name for layer in extras]

    signature = [
        tf.TensorSpec(tensor.shape, tf.dtypes.as_dtype(_dtype_name(tensor)), name=name)
        for name, tensor in zip(input_names, model.inputs, strict=True)
    ]
    single = len(signature) == 1

    def serve(*arguments: Any) -> list[Any]:
        results = model(arguments[0] if single else list(arguments), training=False)
        return list(results) if isinstance(results, list | tuple) else [results]

    try:
        with tf.device("/cpu:0"):
            function = tf.function(serve, input_signature=signature).get_concrete_function()
    except Exception as error:  # noqa: BLE001 - tracing runs the user's layers
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"The Keras model in {label} could not be traced into a TensorFlow function: {first_line(error)}",
            {"file": label},
        ) from None
    graph_def = freeze_function(function, large_model)
    plan = GraphPlan(GraphIndex(graph_def))
    keras_tensors = {name: getattr(tensor, "name", "") for name, tensor in zip(input_names, model.inputs, strict=True)}
    for name, placeholder in zip(input_names, function.inputs[: len(input_names)], strict=True):
        plan.add_input(placeholder.name, name, [keras_tensors[name]] if keras_tensors[name] != name else [])
    for name, tensor in zip(onnx_outputs, function.outputs, strict=True):
        plan.add_output(tensor.name, name, aliases.get(name, []))
    for requested in requests.inputs:
        if plan.names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", input_names)
    for requested in graph_requests.outputs:
        if plan.names.resolve(requested.name, "output") is not None:
            continue
        found = plan.index.find(requested.name)
        if found is None:
            raise unknown_tensor(
                requested.name,
                requested.where,
                "output",
                output_names + [name for name in layers if name not in output_names],
            )
        plan.add_output(found, requested.name, [])
    model_output_count = len(onnx_outputs)
    reference = _KerasReference(model, input_names, onnx_outputs, plan, graph_def, model_output_count)
    onnx_model, unknown_rank = convert_graph_def(graph_def, plan, opset=opset, large_model=large_model, name=label)
    loader = "keras.saving.load_model" if major >= 3 else "tf_keras.models.load_model"
    return Conversion(
        model=onnx_model,
        names=plan.names,
        reference=reference,
        source={"loader": loader, "keras_version": _saved_version(located) or "unknown", "converter": "tf2onnx"},
        notes=plan.notes,
        unknown_rank=unknown_rank,
    )


def keras_major_version(located: LocatedModel) -> int:
    """The major version of the Keras that saved the file: 3, or 2 (also for files that do not say)."""
    version = _saved_version(located)
    if version is None:
        return 3 if located.format is ModelFormat.KERAS else 2
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 2


def _saved_version(located: LocatedModel) -> str | None:
    path = located.path
    label = located.model_files[0]
    if located.format is ModelFormat.KERAS:
        try:
            with zipfile.ZipFile(path) as bundle:
                metadata = json.loads(bundle.read("metadata.json"))
        except KeyError:
            return None
        except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"{label} is not a Keras archive (a zip with config.json and metadata.json): {first_line(error)}",
                {"file": label},
            ) from None
        version = metadata.get("keras_version") if isinstance(metadata, dict) else None
        return str(version) if version else None
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("keras_version")
    except OSError as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable HDF5 file: {first_line(error)}", {"file": label}
        ) from None
    if version is None:
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


def _keras_api(major: int) -> Any:
    tensorflow()
    if major >= 3:
        import keras

        return keras
    import tf_keras

    return tf_keras


def _layer_name(tensor: Any) -> str:
    """The name of the layer that produced a Keras tensor (the Input layer's name for inputs)."""
    history = getattr(tensor, "_keras_history", None)
    if history is not None:
        owner = getattr(history, "operation", None) or getattr(history, "layer", None) or history[0]
        return str(owner.name)
    return strip_port(str(tensor.name))


def _dtype_name(tensor: Any) -> str:
    dtype = tensor.dtype
    return dtype if isinstance(dtype, str) else str(getattr(dtype, "name", dtype))


def _single_output(layer: Any) -> Any:
    try:
        output = layer.output
    except (AttributeError, ValueError, RuntimeError):  # a layer used several times, or never
        return None
    return None if output is None or isinstance(output, list | tuple | dict) else output


def _application_layers(api: Any) -> dict[str, Any]:
    """Layers that `keras.applications` define for themselves (ConvNeXt's LayerScale).

    A `.keras` file names their module, but an `.h5` names only the class, which the loader then
    cannot find; they are Keras's own code, so offering them is as safe as any built-in layer.
    """
    import sys

    prefix = f"{api.__name__}.src.applications."
    found = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        for attribute, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, api.layers.Layer)
                and value.__module__ == name
                and not attribute.startswith("_")
            ):
                found[attribute] = value
    return found


def _load_keras(located: LocatedModel, api: Any) -> Any:
    label = located.model_files[0]
    if located.format is ModelFormat.KERAS_H5:
        _refuse_h5_lambda_layers(located.path, label)
    try:
        return api.models.load_model(
            str(located.path), compile=False, safe_mode=True, custom_objects=_application_layers(api)
        )
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
                f"{label} uses custom Keras objects that are not available here ({first_line(error)}); "
                "export the model as a SavedModel (model.export or tf.saved_model.save) and upload that.",
                {"file": label},
            ) from None
        # The container opened and named its Keras version: Keras could not rebuild the model.
        version = getattr(api, "__version__", "")
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"{label} could not be rebuilt by {api.__name__} {version} ({first_line(error)}); "
            + (
                "save the model as .keras (model.save('model.keras')) or export a SavedModel (model.export) instead."
                if located.format is ModelFormat.KERAS_H5
                else "export a SavedModel (model.export or tf.saved_model.save) instead."
            ),
            {"file": label, "keras": f"{api.__name__} {version}"},
        ) from None


def _refuse_h5_lambda_layers(path: Path, label: str) -> None:
    """Keras .h5 Lambda layers hold marshalled Python bytecode; loading one runs it."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
    except OSError as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable HDF5 file: {first_line(error)}", {"file": label}
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
    """The Keras model itself (model(x, training=False)); ops inside layers come from the frozen graph."""

    def __init__(
        self,
        model: Any,
        input_names: list[str],
        output_names: list[str],
        plan: GraphPlan,
        graph_def: Any,
        model_outputs: int,
    ) -> None:
        self.model = model
        self.input_names = input_names
        self.output_names = output_names[:model_outputs]
        self.plan = plan
        self.graph_def = graph_def
        self.description = "the Keras model (model(x, training=False))"

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tf = tensorflow()
        arguments = [tf.constant(feeds[name]) for name in self.input_names]
        results = self.model(arguments if len(arguments) > 1 else arguments[0], training=False)
        if not isinstance(results, list | tuple):
            results = [results]
        found = {name: np.asarray(value) for name, value in zip(self.output_names, results, strict=True)}
        rest = [name for name in outputs if name not in found]
        if rest:
            from functions.converter.tensorflow_sources.tf_graph import SessionReference

            graph = SessionReference.from_graph_def(self.graph_def, self.plan, "the frozen Keras graph")
            found.update(graph.run(feeds, rest))
        return {name: found[name] for name in outputs}
