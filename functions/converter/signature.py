"""The converted model's signature, the user-facing name map, and Neuropod-style spec checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.converter.errors import ConversionFailed, Reason, listing

Dimension = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    """One ONNX input or output: dtype as a numpy name, shape with symbols (str) or None (unknown)."""

    name: str
    dtype: str
    shape: tuple[Dimension, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [tensor.to_dict() for tensor in self.inputs],
            "outputs": [tensor.to_dict() for tensor in self.outputs],
        }

    def input(self, name: str) -> TensorInfo:
        return next(tensor for tensor in self.inputs if tensor.name == name)

    def output(self, name: str) -> TensorInfo:
        return next(tensor for tensor in self.outputs if tensor.name == name)

    @property
    def input_names(self) -> list[str]:
        return [tensor.name for tensor in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [tensor.name for tensor in self.outputs]


def strip_port(name: str) -> str:
    """`scope/op:0` → `scope/op`; other ports are kept, they name a different tensor."""
    return name[:-2] if name.endswith(":0") else name


class NameMap:
    """User-facing names → ONNX names.

    A tensor can be called by its ONNX name, its signature key, its Keras layer name, or its
    TensorFlow tensor name with or without `:0`. The first registration of an alias wins, and
    callers register the most specific names (ONNX names, signature keys) first.
    """

    def __init__(self) -> None:
        self._aliases: dict[str, str] = {}
        self._roles: dict[str, str] = {}

    def add_tensor(self, onnx_name: str, role: str, aliases: Iterable[str] = ()) -> None:
        self._roles[onnx_name] = role
        self.add(onnx_name, onnx_name)
        for alias in aliases:
            self.add(alias, onnx_name)

    def add(self, alias: str, onnx_name: str) -> None:
        if not alias:
            return
        for variant in (alias, strip_port(alias)):
            self._aliases.setdefault(variant, onnx_name)

    def resolve(self, name: str, role: str | None = None) -> str | None:
        for candidate in (name, strip_port(name), f"{name}:0"):
            found = self._aliases.get(candidate)
            if found is not None and (role is None or self._roles.get(found) == role):
                return found
        return None

    def names(self, role: str) -> list[str]:
        return [name for name, found in self._roles.items() if found == role]

    def aliases_of(self, onnx_name: str) -> list[str]:
        return [alias for alias, target in self._aliases.items() if target == onnx_name]

    def to_dict(self) -> dict[str, str]:
        return dict(self._aliases)

    def retarget(self, onnx_name: str, new_name: str) -> None:
        """Follow a rename of an ONNX tensor, keeping every alias that pointed to it."""
        for alias, target in list(self._aliases.items()):
            if target == onnx_name:
                self._aliases[alias] = new_name
        if onnx_name in self._roles:
            self._roles[new_name] = self._roles.pop(onnx_name)
        self._aliases.setdefault(new_name, new_name)


def unknown_tensor(name: str, where: str, role: str, available: Iterable[str]) -> ConversionFailed:
    names = sorted(set(available))
    return ConversionFailed(
        Reason.UNKNOWN_TENSOR,
        f"The tensor {name!r} named in {where} does not exist in the model; available {role}s: {listing(names)}.",
        {"tensor": name, "where": where, "role": role, "available": names[:200]},
    )


# ---- Neuropod-style input_spec / output_spec ----------------------------------------------------


@dataclass(frozen=True)
class DeclaredTensor:
    """One entry of `input_spec` / `output_spec`, resolved to its ONNX tensor."""

    name: str
    onnx_name: str
    dtype: str
    shape: tuple[Dimension, ...]


def spec_entries(spec: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Spec entries as plain dicts, whether given as pydantic `TensorSpec` objects or dicts."""
    entries = []
    for entry in spec or []:
        item = entry.model_dump(mode="json") if hasattr(entry, "model_dump") else dict(entry)
        missing = [key for key in ("name", "dtype", "shape") if key not in item]
        if missing:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"Every input_spec/output_spec entry needs name, dtype and shape; {item!r} lacks {', '.join(missing)}.",
            )
        entries.append(item)
    return entries


def resolve_spec(spec: Iterable[Any] | None, role: str, names: NameMap, signature: Signature) -> list[DeclaredTensor]:
    where = f"{role}_spec"
    tensors = signature.inputs if role == "input" else signature.outputs
    declared = []
    for item in spec_entries(spec):
        onnx_name = names.resolve(item["name"], role)
        if onnx_name is None:
            raise unknown_tensor(item["name"], where, role, [t.name for t in tensors])
        declared.append(
            DeclaredTensor(name=item["name"], onnx_name=onnx_name, dtype=str(item["dtype"]), shape=tuple(item["shape"]))
        )
    return declared


def check_spec_against_signature(declared: list[DeclaredTensor], signature: Signature) -> list[str]:
    """Static check of declared dtypes and shapes against the converted signature.

    Returns the problems found (empty when the declaration agrees). A declared integer against a
    dynamic model dimension is accepted here and checked when the model runs.
    """
    problems: list[str] = []
    symbols: dict[str, int] = {}
    by_name = {tensor.name: tensor for tensor in (*signature.inputs, *signature.outputs)}
    for entry in declared:
        actual = by_name[entry.onnx_name]
        if entry.dtype != actual.dtype:
            problems.append(f"{entry.name!r} is declared {entry.dtype} but the model's is {actual.dtype}")
        if actual.shape is None:
            continue
        if len(entry.shape) != len(actual.shape):
            problems.append(
                f"{entry.name!r} is declared with rank {len(entry.shape)} {_shape(entry.shape)} "
                f"but the model's has rank {len(actual.shape)} {_shape(actual.shape)}"
            )
            continue
        for axis, (want, have) in enumerate(zip(entry.shape, actual.shape, strict=True)):
            if isinstance(want, int) and isinstance(have, int) and want != have:
                problems.append(f"{entry.name!r} dimension {axis} is declared {want} but the model's is {have}")
            elif isinstance(want, str) and isinstance(have, int):
                seen = symbols.setdefault(want, have)
                if seen != have:
                    problems.append(
                        f"symbol {want!r} stands for {seen} elsewhere but {entry.name!r} dimension {axis} is {have}"
                    )
    return problems


def check_runtime_shapes(
    declared: Iterable[DeclaredTensor], arrays: Mapping[str, np.ndarray], symbols: dict[str, int] | None = None
) -> tuple[list[str], dict[str, int]]:
    """Check tensors that actually flowed against declarations; symbols must agree everywhere."""
    problems: list[str] = []
    symbols = {} if symbols is None else symbols
    for entry in declared:
        if entry.onnx_name not in arrays:
            continue
        array = arrays[entry.onnx_name]
        dtype = dtype_name(array.dtype)
        if dtype != entry.dtype:
            problems.append(f"{entry.name!r} is declared {entry.dtype} but carried {dtype}")
        if len(entry.shape) != array.ndim:
            problems.append(
                f"{entry.name!r} is declared with rank {len(entry.shape)} {_shape(entry.shape)} "
                f"but carried shape {list(array.shape)}"
            )
            continue
        for axis, (want, size) in enumerate(zip(entry.shape, array.shape, strict=True)):
            if isinstance(want, int) and want != size:
                problems.append(f"{entry.name!r} dimension {axis} is declared {want} but was {size}")
            elif isinstance(want, str):
                seen = symbols.setdefault(want, int(size))
                if seen != size:
                    problems.append(
                        f"symbol {want!r} was {seen} elsewhere but {entry.name!r} dimension {axis} was {size}"
                    )
    return problems, symbols


def dtype_name(dtype: np.dtype[Any] | type) -> str:
    resolved = np.dtype(dtype)
    if resolved.kind in ("U", "S", "O"):
        return "string"
    return resolved.name


def _shape(shape: Iterable[Dimension]) -> str:
    return "(" + ", ".join("None" if dim is None else str(dim) for dim in shape) + ")"
