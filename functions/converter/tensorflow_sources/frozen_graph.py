"""Frozen GraphDefs (Neuropod style): tensors named by node_name_mapping, postprocessings or the graph's ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions.converter.errors import ConversionFailed, Reason, listing
from functions.converter.formats import LocatedModel
from functions.converter.graphs import PLACEHOLDER_OPS, GraphIndex
from functions.converter.signature import strip_port, unknown_tensor
from functions.converter.tensorflow_sources.common import Conversion, Requests
from functions.converter.tensorflow_sources.tf_graph import (
    GraphPlan,
    SessionReference,
    convert_graph_def,
    first_line,
    tensorflow,
)


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
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
            f"{label} cannot be imported as a TensorFlow graph: {first_line(error)}",
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
    plan = GraphPlan(index)
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
    reference = SessionReference(session, plan, "the frozen graph run in a TensorFlow session")
    model, unknown_rank = convert_graph_def(graph_def, plan, opset=opset, large_model=large_model, name=label)
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
