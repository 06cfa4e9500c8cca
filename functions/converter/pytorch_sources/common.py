"""What TorchScript files and torch.export programs share: input_spec → example inputs, output names, the reference."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from functions.converter.errors import ConversionFailed, Reason, error_summary, listing
from functions.converter.parity import DEFAULT_BATCH_SIZE, DEFAULT_DYNAMIC_SIZE
from functions.converter.signature import NameMap, unknown_tensor
from functions.converter.tensorflow_sources.common import Reference, Requests

if TYPE_CHECKING:
    import torch

# input_spec dtypes a torch tensor can hold (every TensorSpec dtype but string), by torch's attribute name.
TORCH_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool")
SINGLE_OUTPUT_NAME = "output"
TUPLE_OUTPUT_PREFIX = "output_"


class PyTorchFile(Enum):
    TORCHSCRIPT = "torchscript"
    EXPORTED_PROGRAM = "exported_program"
    CHECKPOINT = "checkpoint"


def read_kind(path: Path, label: str) -> PyTorchFile:
    """Which PyTorch file this is, from its zip members (`code/` for TorchScript, `models/` for torch.export)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        if _is_pickle(path):
            return PyTorchFile.CHECKPOINT  # torch.save's format before torch 1.6: a bare pickle stream
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} is not a TorchScript or torch.export file (both are zip archives and this file is not one); "
            "save the model with torch.jit.save or torch.export.save.",
            {"file": label},
        ) from None
    inner = {member.split("/", 1)[1] for member in members if "/" in member}
    if "constants.pkl" in inner and any(name.startswith("code/") for name in inner):
        return PyTorchFile.TORCHSCRIPT
    if "archive_format" in inner or any(name.startswith("models/") for name in inner):
        return PyTorchFile.EXPORTED_PROGRAM
    if "data.pkl" in inner:
        return PyTorchFile.CHECKPOINT
    raise ConversionFailed(
        Reason.CORRUPT_FILE,
        f"{label} is a zip archive but neither a TorchScript file nor a torch.export program; "
        "save the model with torch.jit.save or torch.export.save.",
        {"file": label},
    )


def _is_pickle(path: Path) -> bool:
    """Whether the file starts as a pickle stream of protocol 2 or later does (PROTO opcode, then its version)."""
    with path.open("rb") as file:
        head = file.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def torch_error_summary(error: BaseException) -> str:
    """`error_summary`, but an error raised inside TorchScript code reads as the error its code raised: torch
    heads it "The following operation failed in the TorchScript interpreter." over both tracebacks, and the
    error itself (`RuntimeError: Expected 4D input to conv2d…`) is the last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1][:500]
    return error_summary(error)


def torch_dtype(dtype: str, name: str) -> torch.dtype:
    import torch

    if dtype not in TORCH_DTYPES:
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f"input_spec declares {name!r} as {dtype}, which a PyTorch tensor cannot hold; "
            f"use one of {', '.join(TORCH_DTYPES)}.",
            {"tensor": name, "dtype": dtype},
        )
    return getattr(torch, dtype)  # type: ignore[no-any-return]


def example_input(
    name: str,
    dtype: str,
    shape: Sequence[int | str | None],
    test_inputs: Mapping[str, np.ndarray] | None,
    symbols: dict[str, int],
    rng: np.random.Generator,
) -> torch.Tensor:
    """The tensor a model is traced with: the user's test_input array, else one shaped by the spec.

    Symbols share a size, the batch axis is DEFAULT_BATCH_SIZE (2: torch specialises sizes 0 and 1),
    other free axes DEFAULT_DYNAMIC_SIZE, as the parity check's generated inputs are.
    """
    import torch

    given = (test_inputs or {}).get(name)
    if given is not None and given.ndim == len(shape):
        return torch.from_numpy(np.ascontiguousarray(given)).to(torch_dtype(dtype, name))
    concrete = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int):
            concrete.append(dim)
            continue
        size = DEFAULT_BATCH_SIZE if axis == 0 else DEFAULT_DYNAMIC_SIZE
        concrete.append(symbols.setdefault(dim, size) if isinstance(dim, str) else size)
    if dtype.startswith("float"):
        values = rng.standard_normal(concrete).astype(np.float32)
        return torch.from_numpy(values).to(torch_dtype(dtype, name))
    return torch.zeros(concrete, dtype=torch_dtype(dtype, name))  # indices and masks: zero is always valid


def dynamic_axes(name: str, shape: Sequence[int | str | None]) -> dict[int, str]:
    """The axes the ONNX input keeps free: symbols by their name, None as `<input>_<axis>`."""
    axes = {}
    for axis, dim in enumerate(shape):
        if isinstance(dim, str):
            axes[axis] = dim
        elif dim is None:
            axes[axis] = "batch" if axis == 0 else f"{name}_{axis}"
    return axes


def named_outputs(result: Any, label: str) -> list[tuple[str, torch.Tensor]]:
    """The model's outputs as (name, tensor): dict keys as they are, tuple positions as `output_<i>`.

    A single tensor is `output`; nested containers join their keys with dots (`output_0.boxes`).
    """
    import torch
    from torch.utils._pytree import tree_flatten_with_path

    leaves, _ = tree_flatten_with_path(result)
    named = []
    for path, leaf in leaves:
        parts = [str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))) for key in path]
        name = ".".join(parts) if parts else SINGLE_OUTPUT_NAME
        if path and hasattr(path[0], "idx"):
            name = TUPLE_OUTPUT_PREFIX + name
        if not isinstance(leaf, torch.Tensor):
            kind = type(leaf).__name__
            raise ConversionFailed(
                Reason.CONVERSION_ERROR,
                f"{label} returns {'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind} as {name!r}; a served model "
                "returns tensors "
                "(one, a tuple of them, or a dict of names to tensors).",
                {"output": name},
            )
        named.append((name, leaf))
    if not named:
        raise ConversionFailed(Reason.CONVERSION_ERROR, f"{label} returns no tensor.", {"file": label})
    return named


def output_aliases(name: str) -> list[str]:
    """`output_1` may also be called `1`, its tuple position."""
    position = name.removeprefix(TUPLE_OUTPUT_PREFIX)
    return [position] if name != position and position.isdigit() else []


def name_map(input_names: Sequence[str], output_names: Sequence[str]) -> NameMap:
    names = NameMap()
    for name in input_names:
        names.add_tensor(name, "input")
    for name in output_names:
        names.add_tensor(name, "output", output_aliases(name))
    return names


def check_requests(names: NameMap, requests: Requests) -> None:
    """Every tensor the preprocessing and postprocessings name must be one the model has."""
    for requested in requests.inputs:
        if names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", names.names("input"))
    for requested in requests.outputs:
        if names.resolve(requested.name, "output") is None:
            raise unknown_tensor(
                requested.name,
                requested.where + " (a PyTorch model's outputs are its dict keys, or output_<i> for tuple positions)",
                "output",
                names.names("output"),
            )


def spec_by_name(requests: Requests, known: Sequence[str], label: str, what: str) -> dict[str, dict[str, Any]]:
    """input_spec entries keyed by name; a name the model does not take is refused, listing those it does."""
    entries = {str(entry["name"]): entry for entry in requests.input_spec}
    unknown = [name for name in entries if name not in known]
    if unknown:
        raise ConversionFailed(
            Reason.UNKNOWN_TENSOR,
            f"input_spec names {listing(unknown)} but {label}'s {what} takes {listing(list(known))}; "
            "name each entry after the argument it feeds.",
            {"unknown": unknown, "available": list(known)},
        )
    return entries


class TorchReference(Reference):
    """Runs the original model with torch: feeds by input name, outputs by their flattened names."""

    def __init__(
        self,
        module: Callable[..., Any],
        input_names: Sequence[str],
        label: str,
        description: str,
        accepted: Sequence[str] = (),
    ) -> None:
        self.module = module
        self.input_names = list(input_names)
        self.label = label
        self.description = description
        self.accepted = list(accepted)  # the sizes the model was exported for, said when it refuses others

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        import torch

        arguments = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in self.input_names]
        try:
            with torch.inference_mode():
                result = self.module(*arguments)
        except Exception as error:
            if not self.accepted:
                raise
            shapes = {name: list(argument.shape) for name, argument in zip(self.input_names, arguments, strict=True)}
            raise ConversionFailed(
                Reason.RUNTIME_ERROR,
                f"{self.label} fails on inputs shaped {shapes}: {torch_error_summary(error)}; it was exported for "
                f"{', '.join(self.accepted)}: set conversion_options.test_batch_size within that range or "
                "upload test_input.npz.",
                {"input_shapes": shapes, "accepted": self.accepted},
            ) from None
        produced = dict(named_outputs(result, self.label))
        return {name: produced[name].detach().cpu().numpy() for name in outputs}
