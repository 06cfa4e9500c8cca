"""TorchScript files (torch.jit.save): exported by torch's TorchScript exporter, checked against the module.

torch.export cannot read a ScriptModule, so the dynamo exporter is not an option here. The module
is called from a small traced wrapper that flattens its outputs to a tuple: the TorchScript
exporter refuses dict outputs (`prim::DictConstruct`), and a scripted call inside a trace keeps
its control flow.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from functions.converter.errors import ConversionFailed, Reason, error_summary, listing
from functions.converter.pytorch_sources.common import (
    TorchReference,
    check_requests,
    dynamic_axes,
    example_input,
    name_map,
    named_outputs,
    spec_by_name,
    torch_error_summary,
)
from functions.converter.tensorflow_sources.common import Conversion, Requests


def convert(
    path: Path, label: str, requests: Requests, *, opset: int, test_inputs: Mapping[str, np.ndarray] | None
) -> Conversion:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError and others on damaged files
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable TorchScript file: {error_summary(error)}", {"file": label}
        ) from None
    module.eval()
    arguments = [(argument.name, argument.has_default_value()) for argument in module.forward.schema.arguments[1:]]
    entries = _ordered_spec(arguments, requests, label)
    symbols: dict[str, int] = {}
    rng = np.random.default_rng(0)
    examples = tuple(
        example_input(entry["name"], entry["dtype"], entry["shape"], test_inputs, symbols, rng) for entry in entries
    )
    input_names = [entry["name"] for entry in entries]
    try:
        with torch.inference_mode():
            outputs = named_outputs(module(*examples), label)
    except ConversionFailed:
        raise
    except Exception as error:  # noqa: BLE001 - the user's model failing on its declared inputs
        shapes = {name: list(example.shape) for name, example in zip(input_names, examples, strict=True)}
        raise ConversionFailed(
            Reason.RUNTIME_ERROR,
            f"{label} fails on inputs shaped as input_spec declares {shapes}: {torch_error_summary(error)}",
            {"input_shapes": shapes},
        ) from None
    output_names = [name for name, _ in outputs]
    names = name_map(input_names, output_names)
    check_requests(names, requests)
    # The TorchScript exporter folds BatchNorm into the weights it shares with the traced module: it
    # exports a copy of its own, so that the reference keeps the file's parameters.
    model = _export(torch.jit.load(str(path), map_location="cpu").eval(), examples, entries, output_names, opset, label)
    reference = TorchReference(module, input_names, label, f"torch {torch.__version__} running the TorchScript module")
    return Conversion(
        model=model,
        names=names,
        reference=reference,
        source={"pytorch": "torchscript", "exporter": "torch.onnx.export TorchScript exporter (dynamo=False)"},
    )


def _ordered_spec(arguments: list[tuple[str, bool]], requests: Requests, label: str) -> list[dict[str, Any]]:
    """input_spec in forward's argument order; every argument without a default must be declared."""
    argument_names = [name for name, _ in arguments]
    if not requests.input_spec:
        example = ", ".join(
            f'{{"name": "{name}", "dtype": "float32", "shape": ["batch", ...]}}' for name in argument_names
        )
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f"A TorchScript file does not record its input shapes: send input_spec with one entry per argument "
            f"of forward ({listing(argument_names)}), e.g. [{example}].",
            {"arguments": argument_names},
        )
    entries = spec_by_name(requests, argument_names, label, "forward")
    declared = [name for name in argument_names if name in entries]
    expected = argument_names[: len(declared)]
    if declared != expected or any(not has_default for name, has_default in arguments[len(declared) :]):
        missing = [name for name, has_default in arguments if name not in entries and not has_default]
        missing = missing or [name for name in expected if name not in entries]
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f"input_spec does not declare {listing(missing)}, which {label}'s forward takes before or "
            "without a default; declare every argument up to the last one the model is called with.",
            {"missing": missing, "arguments": argument_names},
        )
    return [entries[name] for name in declared]


def _flat_outputs(module: Any, label: str) -> Any:
    """A torch.nn.Module calling the ScriptModule and returning its outputs as one flat tuple."""
    import torch

    class FlatOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *arguments: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(tensor for _, tensor in named_outputs(self.inner(*arguments), label))

    return FlatOutputs()


def _export(
    module: Any,
    examples: tuple[Any, ...],
    entries: list[dict[str, Any]],
    output_names: list[str],
    opset: int,
    label: str,
) -> onnx.ModelProto:
    import torch

    axes = {entry["name"]: found for entry in entries if (found := dynamic_axes(entry["name"], entry["shape"]))}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            traced = torch.jit.trace(_flat_outputs(module, label), examples, check_trace=False, strict=False)
            torch.onnx.export(
                traced,
                examples,
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                input_names=[entry["name"] for entry in entries],
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as error:  # noqa: BLE001 - the exporter raises many types for unsupported operators
        raise ConversionFailed(
            Reason.CONVERSION_ERROR,
            f"torch could not export {label} to ONNX opset {opset}: {torch_error_summary(error)}",
            {"opset": opset, "error": f"{type(error).__name__}: {str(error)[:2000]}"},
        ) from None
    return onnx.load_from_string(buffer.getvalue())
