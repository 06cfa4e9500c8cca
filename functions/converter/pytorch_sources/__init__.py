"""PyTorch formats: TorchScript files and torch.export programs, exported to ONNX by torch itself.

`torchscript` reads `torch.jit.save` files and exports them with torch's TorchScript exporter;
`exported_program` reads `torch.export.save` programs (.pt2) and exports them with the dynamo
exporter; `common` holds what both share (input_spec → example inputs, output names, the torch
reference). Which one a `.pt`/`.pth` holds is read from its zip members, never from pickles.
Importing this package does not import torch: each format's module does, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.formats import LocatedModel
from functions.converter.pytorch_sources.common import PyTorchFile, read_kind
from functions.converter.tensorflow_sources.common import Conversion, Requests

if TYPE_CHECKING:
    import numpy as np

__all__ = ["convert", "versions"]


def convert(
    located: LocatedModel, requests: Requests, *, opset: int, test_inputs: Mapping[str, np.ndarray] | None
) -> Conversion:
    label = located.model_files[0]
    kind = read_kind(located.path, label)
    if kind is PyTorchFile.TORCHSCRIPT:
        from functions.converter.pytorch_sources import torchscript

        return torchscript.convert(located.path, label, requests, opset=opset, test_inputs=test_inputs)
    if kind is PyTorchFile.EXPORTED_PROGRAM:
        from functions.converter.pytorch_sources import exported_program

        return exported_program.convert(located.path, label, requests, opset=opset, test_inputs=test_inputs)
    raise ConversionFailed(
        Reason.UNSAFE_MODEL,
        f"{label} is a torch.save checkpoint (pickled Python objects), which Tensorgate does not unpickle: "
        "save the model with torch.jit.save(torch.jit.script(model), 'model.pt') or "
        "torch.export.save(torch.export.export(model, example_inputs), 'model.pt2').",
        {"file": label},
    )


def versions() -> dict[str, str]:
    import torch

    found = {"torch": str(torch.__version__)}
    try:
        import onnxscript

        found["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass
    return found
