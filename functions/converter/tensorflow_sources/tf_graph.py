"""TensorFlow machinery every TensorFlow format shares: the import, graph plans, tf2onnx, errors.

Every function here imports TensorFlow lazily: the rest of the converter (archives, format
detection, ONNX pass-through, parity maths) stays importable and testable without it.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto

from functions.converter.errors import ConversionFailed, Reason, error_summary, listing
from functions.converter.graphs import PLACEHOLDER_OPS, GraphIndex, tensor_name
from functions.converter.signature import NameMap, strip_port, unknown_tensor
from functions.converter.tensorflow_sources.common import Reference, Requested, Requests

logger = logging.getLogger(__name__)


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


def choose_signature(signatures: Collection[str], label: str, required: bool, requested: str | None) -> str | None:
    """The requested signature, else `serving_default`, else the only one; None if there is none to need."""
    signatures = sorted(signatures)
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


# Attributes that keep a function call out of grappler's inliner. Keras 3 runs grouped
# convolutions through a function marked for XLA compilation and never to be inlined; ONNX needs
# its Conv2D in the graph, and the frozen graph needs no XLA to compute the same numbers.
_NOT_INLINED_ATTRIBUTES = ("_noinline", "_XlaMustCompile")
_CALL_OPS = {"StatefulPartitionedCall", "PartitionedCall"}


def copy_graph_def(graph_def: Any) -> Any:
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    return copy


def allow_inlining(graph_def: Any) -> Any:
    """A copy of `graph_def` whose function calls may all be inlined (XLA-only marks removed)."""
    copy = copy_graph_def(graph_def)
    for node in copy.node:
        for attribute in _NOT_INLINED_ATTRIBUTES:
            if attribute in node.attr:
                del node.attr[attribute]
    for function in copy.library.function:
        for attribute in _NOT_INLINED_ATTRIBUTES:
            if attribute in function.attr:
                del function.attr[attribute]
        for node in function.node_def:
            for attribute in _NOT_INLINED_ATTRIBUTES:
                if attribute in node.attr:
                    del node.attr[attribute]
    return copy


def has_function_calls(graph_def: Any) -> bool:
    return any(node.op in _CALL_OPS for node in graph_def.node)


def inline_functions(graph_def: Any, fetches: list[str]) -> Any:
    """Inline the function calls of a frozen graph (grappler's function optimiser alone).

    A TF 2.x signature is one call to a function holding every layer; inlined, its nodes are
    named `StatefulPartitionedCall/.../<layer>/<op>` and can be found and exposed as outputs.
    Functions marked for XLA or as not to be inlined (Keras 3's grouped convolutions) are
    inlined too: tf2onnx converts the ops inside, not a call.
    """
    tf = tensorflow()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.optimizers[:] = ["function"]
    config.graph_options.rewrite_options.min_graph_nodes = -1
    with tf.Graph().as_default():
        meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=allow_inlining(graph_def))
    fetch_collection = meta_graph_pb2.CollectionDef()
    fetch_collection.node_list.value.extend(fetches)
    meta_graph.collection_def["train_op"].CopyFrom(fetch_collection)
    return tf_optimizer.OptimizeGraph(config, meta_graph)


def rewrite_erfc(graph_def: Any) -> int:
    """Replace each `Erfc` (Keras 3's exact GELU) with `1 - Erf`, in place; the count replaced.

    ONNX has Erf but no Erfc, and tf2onnx 1.17 has no handler for it. The node keeps its name,
    so its consumers and a user's name for it still find it.
    """
    tf = tensorflow()
    replaced = 0
    for node in list(graph_def.node):
        if node.op != "Erfc":
            continue
        dtype = node.attr["T"].type
        data_inputs = [source for source in node.input if not source.startswith("^")]
        controls = [source for source in node.input if source.startswith("^")]
        erf = graph_def.node.add(name=f"{node.name}/erf_of", op="Erf")
        erf.input.extend(data_inputs[:1] + controls)
        erf.attr["T"].type = dtype
        one = graph_def.node.add(name=f"{node.name}/one", op="Const")
        one.attr["dtype"].type = dtype
        one.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1.0, dtype=tf.dtypes.as_dtype(dtype)))
        node.op = "Sub"
        del node.input[:]
        node.input.extend([one.name, erf.name])
        replaced += 1
    return replaced


def freeze_function(function: Any, large_model: bool) -> Any:
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
            f"TensorFlow could not freeze the model's variables into constants: {first_line(error)}",
        ) from None
    return tf_loader.fix_freezing_errors_part2(graph_def)


# ---- shared graph machinery ----------------------------------------------------------------------


class GraphPlan:
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


def convert_graph_def(
    graph_def: Any, plan: GraphPlan, *, opset: int, large_model: bool, name: str
) -> tuple[ModelProto, set[str]]:
    tf = tensorflow()
    from tf2onnx import convert as tf2onnx_convert
    from tf2onnx import tf_loader

    input_names = plan.input_tensors
    output_names = plan.output_tensors
    renames = {tensor: onnx_name for tensor, onnx_name in (*plan.inputs, *plan.outputs)}
    try:
        with tf.device("/cpu:0"):
            if not large_model and has_function_calls(graph_def):
                graph_def = inline_functions(graph_def, input_names + output_names)
            if any(node.op == "Erfc" for node in graph_def.node):
                graph_def = copy_graph_def(graph_def)
                rewrite_erfc(graph_def)
            if not large_model:
                with tf.Graph().as_default():
                    graph_def = tf_loader.tf_optimize(input_names, output_names, graph_def)
            heavy = graph_def.ByteSize() > HEAVY_GRAPH_BYTES
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
                optimizers=collecting_optimizers() if heavy else None,
            )
    except ConversionFailed:
        raise
    except Exception as error:  # noqa: BLE001 - tf2onnx raises anything from anywhere
        raise conversion_error(error, opset) from None
    inline_external_tensors(model, storage)
    return model, _unknown_ranks(model, graph_def, renames)


# tf2onnx's optimizer loop deep-copies the whole graph, weights included, before each of its passes,
# and the copy it drops holds reference cycles: only the cycle collector frees it, and numpy buffers do
# not make it run. InceptionResNetV2 (215 MB of weights) peaked at 9.2 GB in the optimizers alone,
# more than the converter function's memory; collecting before each pass keeps about three copies.
HEAVY_GRAPH_BYTES = 32 * 1024**2


def collecting_optimizers() -> dict[str, Callable[[], Any]]:
    """tf2onnx's optimizers, in its order, each made after a collection of the graph copies dropped before."""
    from tf2onnx import optimizer

    def collecting(factory: Callable[[], Any]) -> Callable[[], Any]:
        def make() -> Any:
            gc.collect()
            return factory()

        return make

    return {name: collecting(factory) for name, factory in optimizer._get_optimizers().items()}  # noqa: SLF001


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


class SessionReference(Reference):
    """A TensorFlow 1.x-style session over the original graph (feeds may be cut points)."""

    def __init__(self, session: Any, plan: GraphPlan, description: str) -> None:
        self._session = session
        self._graph_def: Any = None
        # Outputs that exist only inside inlined functions, computed by `fallback` (the frozen graph).
        self.internal: set[str] = set()
        self.fallback: SessionReference | None = None
        self.feeds = {onnx_name: tensor for tensor, onnx_name in plan.inputs}
        self.fetches = {onnx_name: tensor for tensor, onnx_name in plan.outputs}
        self.description = description

    @classmethod
    def from_graph_def(cls, graph_def: Any, plan: GraphPlan, description: str) -> SessionReference:
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


# ---- errors -------------------------------------------------------------------------------------


def inline_external_tensors(model: ModelProto, storage: Any) -> None:
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


def load_error(error: BaseException, label: str) -> ConversionFailed:
    text = str(error)
    if "variables" in text and ("not found" in text.lower() or "no such file" in text.lower() or "Failed to" in text):
        return ConversionFailed(
            Reason.MISSING_FILE,
            f"{label}'s variables could not be loaded ({first_line(error)}); upload variables.index and "
            "variables.data-* with it.",
            {"file": label},
        )
    return ConversionFailed(
        Reason.CORRUPT_FILE, f"{label} cannot be loaded as a SavedModel: {first_line(error)}", {"file": label}
    )


def conversion_error(error: BaseException, opset: int) -> ConversionFailed:
    return ConversionFailed(
        Reason.CONVERSION_ERROR,
        f"tf2onnx failed to convert the model at opset {opset}: {first_line(error)}",
        {"opset": opset, "error": f"{type(error).__name__}: {str(error)[:2000]}"},
    )


def first_line(error: BaseException) -> str:
    return error_summary(error)
