"""Caffe networks (`framework` `nv-caffe-0.x-mod` or `caffe`): deploy.prototxt + .caffemodel to ONNX.

Our own translation from Caffe's protobuf messages (`proto`, read by `network`) to standard ONNX
operators (`to_onnx`), checked against a numpy implementation of Caffe's layers (`reference`).
The PyPI converters were read first and set aside (docs/conversion.md, "Caffe"): caffe2onnx 2.0.1
pins onnx 1.6.0 and caffe-onnx 0.1.2 pins protobuf below 4, neither installable beside TensorFlow
2.21's stack, and neither gives average pooling Caffe's divisor where padding or a ceil-rounded
window is involved.
"""

from __future__ import annotations

from collections import Counter

from functions.converter.caffe_sources import network
from functions.converter.caffe_sources.reference import CaffeReference
from functions.converter.caffe_sources.to_onnx import to_onnx
from functions.converter.errors import ConversionFailed, Reason
from functions.converter.formats import LocatedModel
from functions.converter.signature import NameMap, unknown_tensor
from functions.converter.tensorflow_sources.common import Conversion, Requests

__all__ = ["SUPPORTED_TYPES", "convert", "versions"]

SUPPORTED_TYPES = network.SUPPORTED_TYPES


def convert(located: LocatedModel, requests: Requests, *, opset: int) -> Conversion:
    if located.weights is None:
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"{located.model_files[0]} needs its trained weights: upload the .caffemodel with it.",
            {"missing": ["*.caffemodel"]},
        )
    prototxt_label = located.model_files[0]
    caffemodel_label = located.model_files[1] if len(located.model_files) > 1 else located.weights.name
    net = network.load(located.path, located.weights, prototxt_label, caffemodel_label)
    names = NameMap()
    for name in net.inputs:
        names.add_tensor(name, "input")
    for requested in requests.inputs:
        if names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", list(net.inputs))
    outputs = list(net.outputs)
    for requested in requests.outputs:
        value = _value_of(net, requested.name)
        if value is None:
            available = sorted(set(net.blob_values) | set(net.layer_tops()))
            raise unknown_tensor(requested.name, requested.where, "output", available)
        if value not in outputs and value not in net.inputs:
            outputs.append(value)
    blob_aliases: dict[str, list[str]] = {}
    for blob, value in net.blob_values.items():
        blob_aliases.setdefault(value, []).append(blob)
    for layer, value in net.layer_tops().items():
        blob_aliases.setdefault(value, []).append(layer)
    for value in outputs:
        names.add_tensor(value, "output", blob_aliases.get(value, []))
    model = to_onnx(net, outputs, opset)
    types = Counter(layer.type for layer in net.layers)
    declared_batch = {name: shape[0] for name, shape in net.inputs.items()}
    return Conversion(
        model=model,
        names=names,
        reference=CaffeReference(net),
        source={
            "caffe": {
                "network": net.name,
                "layers": len(net.layers),
                "layer_types": dict(sorted(types.items())),
                "weights": caffemodel_label,
            }
        },
        notes=[
            f"The batch dimension is dynamic; {prototxt_label} declared "
            + ", ".join(f"{name!r} with batch {batch}" for name, batch in declared_batch.items())
            + "."
        ],
    )


def _value_of(net: network.CaffeNet, name: str) -> str | None:
    if name in net.blob_values:
        return net.blob_values[name]
    layer_tops = net.layer_tops()
    if name in layer_tops:
        return layer_tops[name]
    return name if name in net.values else None


def versions() -> dict[str, str]:
    from google.protobuf import __version__ as protobuf_version

    return {"caffe_translation": "tensorgate", "protobuf": protobuf_version}
