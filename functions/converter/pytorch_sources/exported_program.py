"""torch.export programs (torch.export.save, .pt2): exported by torch's dynamo exporter, checked against the program.

The program fixes which dimensions are dynamic when it is exported: a dimension input_spec declares
free (a symbol or null) but the program fixed is refused with the `dynamic_shapes` that frees it,
since a fixed batch cannot be made dynamic afterwards.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from functions.converter.errors import ConversionFailed, Reason, error_summary
from functions.converter.parity import DEFAULT_BATCH_SIZE, DEFAULT_DYNAMIC_SIZE
from functions.converter.pytorch_sources.common import (
    TorchReference,
    check_requests,
    example_input,
    name_map,
    named_outputs,
    spec_by_name,
)
from functions.converter.signature import dtype_name
from functions.converter.tensorflow_sources.common import Conversion, Requests

# The dynamo exporter writes opset 18 and later (its onnxscript functions start there).
MIN_DYNAMO_OPSET = 18
# What torch.export.save writes (under the archive's root folder). torch.export.load unpickles some
# members with torch.load(weights_only=False) (pickled payloads, and sample inputs after a failed
# weights_only attempt) and falls back to an older layout on errors, so anything else is refused.
_PROGRAM_MEMBERS = re.compile(
    r"^(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/[^/]+\.json"
    r"|data/weights/[^/]+|data/constants/[^/]+|data/sample_inputs/[^/]+\.pt|extra/[^/]+)$"
)
_PAYLOAD_CONFIG = re.compile(r"^data/(weights|constants)/[^/]+_config\.json$")


def convert(
    path: Path, label: str, requests: Requests, *, opset: int, test_inputs: Mapping[str, np.ndarray] | None
) -> Conversion:
    import torch

    _check_members(path, label)
    try:
        program = torch.export.load(str(path))
    except Exception as error:  # noqa: BLE001 - torch raises several types on damaged files
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} is not a readable torch.export program: {error_summary(error)}",
            {"file": label},
        ) from None
    placeholders = _user_inputs(program)
    input_names = list(placeholders)
    entries = spec_by_name(requests, input_names, label, "exported program")
    symbols: dict[str, int] = {}
    rng = np.random.default_rng(0)
    examples = []
    shapes = {}
    for name, value in placeholders.items():
        shape = shapes[name] = _program_shape(name, value, entries.get(name), label)
        _sizes_within_ranges(program, value, shape, symbols)
        examples.append(example_input(name, dtype_name(_numpy_dtype(value)), shape, test_inputs, symbols, rng))
    module = program.module()
    try:
        with torch.inference_mode():
            outputs = named_outputs(module(*examples), label)
    except ConversionFailed:
        raise
    except Exception as error:  # noqa: BLE001 - the program refusing the inputs (guards, shapes)
        tried = {name: list(example.shape) for name, example in zip(input_names, examples, strict=True)}
        raise ConversionFailed(
            Reason.RUNTIME_ERROR,
            f"{label} fails on inputs shaped {tried}: {error_summary(error)}; upload test_input.npz with "
            "inputs it accepts.",
            {"input_shapes": tried},
        ) from None
    output_names = [name for name, _ in outputs]
    names = name_map(input_names, output_names)
    check_requests(names, requests)
    used_opset = max(opset, MIN_DYNAMO_OPSET)
    # The exporter warns on every conversion that torchvision (whose operators it knows) is not installed.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.onnx.export(
                program,
                tuple(examples),
                input_names=input_names,
                output_names=output_names,
                opset_version=used_opset,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - the exporter raises many types for unsupported operators
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"torch could not export {label} to ONNX opset {used_opset}: {error_summary(error)}",
            {"opset": used_opset, "error": f"{type(error).__name__}: {str(error)[:2000]}"},
        ) from None
    assert exported is not None  # dynamo=True always answers an ONNXProgram
    model: onnx.ModelProto = exported.model_proto
    _name_free_dimensions(model, placeholders, shapes)
    notes = []
    if used_opset != opset:
        notes.append(f"torch's dynamo exporter writes opset {MIN_DYNAMO_OPSET} or later: opset {used_opset} was used.")
    reference = TorchReference(
        module,
        input_names,
        label,
        f"torch {torch.__version__} running the torch.export program",
        _accepted_ranges(program, placeholders),
    )
    return Conversion(
        model=model,
        names=names,
        reference=reference,
        source={"pytorch": "torch.export", "exporter": "torch.onnx.export dynamo exporter (dynamo=True)"},
        notes=notes,
    )


def _check_members(path: Path, label: str) -> None:
    """Refuse a program torch.export.load would unpickle beyond tensors: pickled payloads, sample inputs
    or constants that torch's weights_only loader rejects, opaque objects, members of other layouts."""
    import torch

    def refuse(member: str, why: str) -> ConversionFailed:
        return ConversionFailed(
            Reason.UNSAFE_MODEL,
            f"{label} holds {member!r}, {why}, which Tensorgate does not unpickle; save the program again with "
            "torch.export.save from a model whose weights and inputs are plain tensors.",
            {"file": label, "member": member},
        )

    with zipfile.ZipFile(path) as archive:
        roots = sorted({name.split("/", 1)[0] for name in archive.namelist() if "/" in name})
        if len(roots) > 1:
            raise refuse(roots[1], "a second archive folder beside " + repr(roots[0]))
        members = {name.split("/", 1)[1]: name for name in archive.namelist() if "/" in name and not name.endswith("/")}
        pickled = [name for name in members if name.startswith("data/sample_inputs/")]
        for inner in [name for name in archive.namelist() if "/" not in name] + list(members):
            if inner in members and _PROGRAM_MEMBERS.match(inner):
                continue
            raise refuse(inner, "a file torch.export.save does not write")
        for inner in [name for name in members if _PAYLOAD_CONFIG.match(name)]:
            try:
                payloads = json.loads(archive.read(members[inner]))["config"]
                entries = [(str(entry["path_name"]), bool(entry.get("use_pickle"))) for entry in payloads.values()]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise refuse(inner, "a payload list torch cannot have written") from None
            directory = inner.rsplit("/", 1)[0]
            for name, use_pickle in entries:
                if not name.startswith(("weight_", "tensor_")):
                    raise refuse(f"{directory}/{name}", "an object other than a tensor")
                if use_pickle:
                    pickled.append(f"{directory}/{name}")
        for inner in pickled:
            if inner not in members:
                raise refuse(inner, "a payload its list names but the archive lacks")
            try:
                torch.load(io.BytesIO(archive.read(members[inner])), weights_only=True)
            except Exception:  # noqa: BLE001 - whatever weights_only refuses is what is not loaded
                raise refuse(inner, "a pickle holding more than tensors") from None


def _user_inputs(program: Any) -> dict[str, Any]:
    """The program's tensor inputs (not its parameters and buffers), by argument name, with their fake values."""
    import torch

    wanted = list(program.graph_signature.user_inputs)
    found = {}
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in wanted and isinstance(node.meta.get("val"), torch.Tensor):
            found[node.name] = node.meta["val"]
    return {name: found[name] for name in wanted if name in found}


def _sizes_within_ranges(program: Any, value: Any, shape: list[Any], symbols: dict[str, int]) -> None:
    """Example sizes for free dimensions inside the ranges the program was exported with (Dim min/max)."""
    import torch

    for axis, (dim, symbol) in enumerate(zip(value.shape, shape, strict=True)):
        bounds = program.range_constraints.get(dim.node.expr) if isinstance(dim, torch.SymInt) else None
        if bounds is None or not isinstance(symbol, str) or symbol in symbols:
            continue
        size = max(DEFAULT_BATCH_SIZE if axis == 0 else DEFAULT_DYNAMIC_SIZE, int(bounds.lower))
        upper = _finite(bounds.upper)
        if upper is not None:
            size = min(size, upper)
        symbols[symbol] = size


def _finite(bound: Any) -> int | None:
    """A range bound as an int, None when unbounded: torch's `int_oo` (a Dim without max) calls itself finite
    to sympy and fails int(), so it is read through float."""
    return int(bound) if math.isfinite(float(bound)) else None


def _accepted_ranges(program: Any, placeholders: dict[str, Any]) -> list[str]:
    """`x dimension 0 in 10..100` for each free dimension the program bounds (Dim min/max)."""
    import torch

    ranges = []
    for name, value in placeholders.items():
        for axis, dim in enumerate(value.shape):
            bounds = program.range_constraints.get(dim.node.expr) if isinstance(dim, torch.SymInt) else None
            if bounds is not None:
                upper = _finite(bounds.upper)
                ranges.append(f"{name} dimension {axis} in {int(bounds.lower)}..{'' if upper is None else upper}")
    return ranges


def _name_free_dimensions(model: onnx.ModelProto, placeholders: dict[str, Any], shapes: dict[str, list[Any]]) -> None:
    """The program's symbols (s0, s77…) renamed after input_spec's, else `batch` for axis 0, everywhere they occur."""
    import torch

    renames: dict[str, str] = {}
    for name, value in placeholders.items():
        for axis, (dim, declared) in enumerate(zip(value.shape, shapes[name], strict=True)):
            if isinstance(dim, torch.SymInt) and str(dim) not in renames:
                own = str(dim) == declared
                renames[str(dim)] = ("batch" if axis == 0 else f"{name}_{axis}") if own else str(declared)
    for value_info in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dimension in value_info.type.tensor_type.shape.dim:
            if dimension.dim_param in renames:
                dimension.dim_param = renames[dimension.dim_param]


def _numpy_dtype(value: Any) -> np.dtype[Any]:
    import torch

    return np.dtype(torch.empty((), dtype=value.dtype).numpy().dtype)


def _program_shape(name: str, value: Any, entry: dict[str, Any] | None, label: str) -> list[int | str | None]:
    """The input's shape as the program fixed it (ints) or left it free (its symbol), checked against input_spec."""
    import torch

    shape: list[int | str | None] = [str(dim) if isinstance(dim, torch.SymInt) else int(dim) for dim in value.shape]
    if entry is None:
        return shape
    declared = list(entry["shape"])
    dtype = dtype_name(_numpy_dtype(value))
    if entry["dtype"] != dtype:
        raise ConversionFailed(
            Reason.SPEC_MISMATCH,
            f"input_spec declares {name!r} as {entry['dtype']} but {label} takes {dtype}.",
            {"tensor": name},
        )
    if len(declared) != len(shape):
        raise ConversionFailed(
            Reason.SPEC_MISMATCH,
            f"input_spec declares {name!r} with rank {len(declared)} but {label} takes rank {len(shape)} {shape}.",
            {"tensor": name},
        )
    for axis, (want, have) in enumerate(zip(declared, shape, strict=True)):
        if isinstance(have, int) and not isinstance(want, int):
            symbol = want if isinstance(want, str) else ("batch" if axis == 0 else f"{name}_{axis}")
            raise ConversionFailed(
                Reason.SPEC_MISMATCH,
                f"input_spec declares {name!r} dimension {axis} free ({want!r}) but {label} was exported with it "
                f"fixed at {have}; export with dynamic_shapes={{{name!r}: {{{axis}: torch.export.Dim({symbol!r})}}}} "
                f"or declare {have}.",
                {"tensor": name, "axis": axis, "exported": have},
            )
        if isinstance(have, int) and isinstance(want, int) and want != have:
            raise ConversionFailed(
                Reason.SPEC_MISMATCH,
                f"input_spec declares {name!r} dimension {axis} as {want} but {label} was exported with {have}.",
                {"tensor": name, "axis": axis, "exported": have},
            )
    # The spec's symbols name the free dimensions (and tie them across inputs); the program's are s0, s1...
    return [
        want if isinstance(have, str) and isinstance(want, str) else have
        for want, have in zip(declared, shape, strict=True)
    ]
