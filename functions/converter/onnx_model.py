"""ONNX side of the conversion: signature, renames, extra outputs, op support, saving, sessions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, external_data_helper, helper, shape_inference

from functions.converter.errors import ConversionFailed, Reason, error_summary, listing
from functions.converter.signature import Signature, TensorInfo

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
# Dimensions tf2onnx could not name: we give them readable names.
_UNNAMED_DIMENSION = re.compile(r"^(unk__\d+|)$")
BATCH_SYMBOL = "batch"


def signature_of(model: ModelProto) -> Signature:
    initializers = {initializer.name for initializer in model.graph.initializer}
    inputs = tuple(_tensor_info(value) for value in model.graph.input if value.name not in initializers)
    outputs = tuple(_tensor_info(value) for value in model.graph.output)
    return Signature(inputs=inputs, outputs=outputs)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dtype = _dtype_name(tensor_type.elem_type)
    if not tensor_type.HasField("shape"):
        return TensorInfo(value.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorInfo(value.name, dtype, tuple(dims))


def _dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.STRING:
        return "string"
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name


def rename_tensors(model: ModelProto, renames: Mapping[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them, in subgraphs too)."""
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        return
    taken = _all_value_names(model.graph) - set(renames)
    clashes = sorted(new for new in renames.values() if new in taken)
    if clashes:
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"Cannot name the ONNX tensors {listing(clashes)}: the converted graph already uses these names.",
        )
    _rename_in_graph(model.graph, renames)


def _rename_in_graph(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    for collection in (graph.input, graph.output, graph.value_info):
        for value in collection:
            if value.name in renames:
                value.name = renames[value.name]
    for initializer in graph.initializer:
        if initializer.name in renames:
            initializer.name = renames[initializer.name]
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
        for index, name in enumerate(node.output):
            if name in renames:
                node.output[index] = renames[name]
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                _rename_in_graph(subgraph, renames)


def _subgraphs(attribute: onnx.AttributeProto) -> list[onnx.GraphProto]:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


def _all_value_names(graph: onnx.GraphProto) -> set[str]:
    names = {value.name for value in (*graph.input, *graph.output, *graph.value_info)}
    names.update(initializer.name for initializer in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def produced_values(model: ModelProto) -> set[str]:
    """Every tensor computed by a node of the main graph (candidates for extra outputs)."""
    return {name for node in model.graph.node for name in node.output if name}


def add_outputs(model: ModelProto, names: Iterable[str]) -> None:
    """Expose intermediate tensors of an ONNX model as graph outputs, typed by shape inference."""
    wanted = [name for name in names if name not in {value.name for value in model.graph.output}]
    if not wanted:
        return
    inferred = shape_inference.infer_shapes(model)
    known = {value.name: value for value in (*inferred.graph.value_info, *inferred.graph.output)}
    for name in wanted:
        value = known.get(name)
        if value is None or not value.type.tensor_type.elem_type:
            raise ConversionFailed(
                Reason.CONVERSION_ERROR,
                f"The ONNX tensor {name!r} cannot be exposed as an output: its type cannot be inferred.",
                {"tensor": name},
            )
        model.graph.output.append(value)


def name_dynamic_dimensions(
    model: ModelProto, symbols: Mapping[str, Mapping[int, str]], unknown_rank: set[str] | None = None
) -> None:
    """Give readable names to the dynamic dimensions of inputs and outputs.

    Axis 0 of an input is the batch (`batch`); `symbols` (from `input_spec`/`output_spec`) names
    others. Outputs get the names that ONNX shape inference propagates from the inputs, so an
    output whose first axis follows the batch reads `batch` too; an output of unknown rank
    (in `unknown_rank`, removed once known) takes the inferred shape whole.
    """
    unknown_rank = set() if unknown_rank is None else unknown_rank
    initializers = {initializer.name for initializer in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or value.name in unknown_rank or not value.type.tensor_type.HasField("shape"):
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                continue
            declared = symbols.get(value.name, {}).get(axis)
            if declared is not None:
                dim.dim_param = declared
            elif _UNNAMED_DIMENSION.match(dim.dim_param):
                dim.dim_param = BATCH_SYMBOL if axis == 0 else f"{_identifier(value.name)}_dim{axis}"
    input_symbols = {
        dim.dim_param
        for value in model.graph.input
        for dim in value.type.tensor_type.shape.dim
        if dim.HasField("dim_param")
    }
    inferred_outputs = _infer_output_shapes(model, unknown_rank)
    for value in model.graph.output:
        tensor_type = value.type.tensor_type
        inferred = inferred_outputs.get(value.name)
        if value.name in unknown_rank:
            inputs_known = not any(item.name in unknown_rank for item in model.graph.input)
            if not inputs_known or inferred is None or any(dim is None for dim in inferred):
                continue
            _set_shape(tensor_type, inferred)
            unknown_rank.discard(value.name)
            continue
        if not tensor_type.HasField("shape"):
            continue
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                continue
            declared = symbols.get(value.name, {}).get(axis)
            if declared is not None:
                dim.dim_param = declared
                continue
            if inferred is not None and axis < len(inferred):
                guess = inferred[axis]
                if isinstance(guess, str) and guess in input_symbols:
                    dim.dim_param = guess
                    continue
            if _UNNAMED_DIMENSION.match(dim.dim_param):
                dim.dim_param = f"{_identifier(value.name)}_dim{axis}"


def apply_declared_shapes(
    model: ModelProto, declared: Mapping[str, Sequence[int | str | None]], unknown_rank: set[str]
) -> None:
    """Give a declared shape (from `input_spec`/`output_spec`) to an input or output of unknown rank."""
    for value in (*model.graph.input, *model.graph.output):
        shape = declared.get(value.name)
        if shape is None or value.name not in unknown_rank:
            continue
        _set_shape(value.type.tensor_type, shape)
        unknown_rank.discard(value.name)


def _set_shape(tensor_type: onnx.TypeProto.Tensor, shape: Sequence[int | str | None]) -> None:
    tensor_type.ClearField("shape")
    tensor_type.shape.SetInParent()
    for dim in shape:
        entry = tensor_type.shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        elif isinstance(dim, str):
            entry.dim_param = dim


def _infer_output_shapes(model: ModelProto, unknown_rank: set[str]) -> dict[str, list[int | str | None]]:
    """Output shapes as ONNX shape inference sees them from the inputs alone."""
    if _weights_bytes(model) > 1024**3:
        return {}  # in-memory inference of a huge model costs more than readable names are worth
    probe = ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    for value in probe.graph.output:
        tensor_type = value.type.tensor_type
        rank = len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
        tensor_type.ClearField("shape")
        if rank is not None and value.name not in unknown_rank:
            for _ in range(rank):
                tensor_type.shape.dim.add()
    try:
        inferred = shape_inference.infer_shapes(probe)
    except Exception:  # noqa: BLE001 - inference is a nicety; the saved model is checked separately
        return {}
    shapes: dict[str, list[int | str | None]] = {}
    for value in inferred.graph.output:
        tensor_info = _tensor_info(value)
        if tensor_info.shape is not None and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = list(tensor_info.shape)
    return shapes


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "tensor"


def unsupported_ops(model: ModelProto) -> dict[str, list[str]]:
    """Op types left in the standard domain that ONNX does not define at the model's opset.

    tf2onnx keeps a TensorFlow op it cannot convert as a node of that TensorFlow type; this
    finds them (with node names) so the error can name them.
    """
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    found: dict[str, list[str]] = {}

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            if node.domain in ("", "ai.onnx") and not _defined(node.op_type, opset):
                found.setdefault(node.op_type, []).append(node.name)
            for attribute in node.attribute:
                for subgraph in _subgraphs(attribute):
                    visit(subgraph)

    visit(model.graph)
    return found


def _defined(op_type: str, opset: int | None) -> bool:
    if not onnx.defs.has(op_type):
        return False
    if opset is None:
        return True
    try:
        onnx.defs.get_schema(op_type, opset)
    except onnx.defs.SchemaError:
        return False
    return True


def _weights_bytes(model: ModelProto) -> int:
    total = 0
    for initializer in model.graph.initializer:
        total += len(initializer.raw_data) or _typed_data_bytes(initializer)
    return total


def _typed_data_bytes(initializer: TensorProto) -> int:
    count = int(np.prod(initializer.dims)) if initializer.dims else 1
    if initializer.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return 0
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(initializer.data_type)).itemsize


def check_external_data_locations(model: ModelProto, label: str) -> list[str]:
    """The external data files an uploaded ONNX model refers to; refuses paths leaving its folder."""
    locations: list[str] = []
    for tensor in external_data_helper._get_all_tensors(model):  # noqa: SLF001 - onnx has no public walker
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        path = PurePosixPath(location.replace("\\", "/"))
        if not location or path.is_absolute() or ".." in path.parts or ":" in location:
            raise ConversionFailed(
                Reason.UNSAFE_MODEL,
                f"{label} refers to external data at {location!r}, outside the uploaded files.",
                {"file": label, "location": location},
            )
        locations.append(location)
    return sorted(set(locations))


def write_model(model: ModelProto, output_dir: Path, *, external_data: bool) -> list[Path]:
    """Write `model.onnx` (plus `model.onnx.data` when the weights go external) into `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / MODEL_FILE
    data_path = output_dir / EXTERNAL_DATA_FILE
    for stale in (path, data_path):
        stale.unlink(missing_ok=True)
    if external_data:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_FILE,
            size_threshold=0,
        )
        return [path, data_path] if data_path.exists() else [path]
    onnx.save_model(model, str(path))
    return [path]


def weights_bytes(model: ModelProto) -> int:
    return _weights_bytes(model)


def check_model(path: Path) -> None:
    """`onnx.checker` on the written file (by path, so models past 2 GB are checked too)."""
    try:
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as error:
        raise ConversionFailed(
            Reason.INVALID_ONNX,
            f"The converted model fails onnx.checker: {error_summary(error)}",
            {"checker": str(error)},
        ) from None


def sha256_of(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()


def session_options(intra_op_threads: int = 0, optimization: str = "all", allow_spinning: bool = True) -> Any:
    """onnxruntime session options: full graph optimisation, sequential, intra-op threads as given.

    Spinning threads win on an idle machine and lose badly on a shared one (2 busy cores: half
    the throughput), so callers on shared CPUs turn `allow_spinning` off.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def open_session(path: Path, intra_op_threads: int = 0) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            str(path), sess_options=session_options(intra_op_threads), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own untyped exceptions
        raise ConversionFailed(
            Reason.RUNTIME_ERROR,
            f"onnxruntime cannot open the converted model: {_first_line(error)}",
            {"onnxruntime": str(error)[:2000]},
        ) from None


def run_session(session: Any, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    try:
        values = session.run(outputs, dict(feeds))
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own untyped exceptions
        shapes = {name: list(array.shape) for name, array in feeds.items()}
        raise ConversionFailed(
            Reason.RUNTIME_ERROR,
            f"The converted model fails to run on inputs shaped {shapes}: {_first_line(error)}",
            {"onnxruntime": str(error)[:2000], "input_shapes": shapes},
        ) from None
    return {name: np.asarray(value) for name, value in zip(outputs, values, strict=True)}


def _first_line(error: BaseException) -> str:
    return error_summary(error)
