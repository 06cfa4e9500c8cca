"""The network's declarations (preprocessing, postprocessings) checked against the converted model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from tensorgate_preprocessing.spec import PostprocessingSpec, PreprocessingSpec, TargetSize, describe_errors

from functions.converter.errors import ConversionFailed, Reason
from functions.converter.parity import ImageInput
from functions.converter.signature import NameMap, Signature, unknown_tensor
from functions.converter.tensorflow_sources.common import Requested

_DATA_TYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "UINT8": "uint8"}


def parse_preprocessing(value: Any) -> PreprocessingSpec | None:
    if value is None:
        return None
    if isinstance(value, PreprocessingSpec):
        return value
    return _validate(PreprocessingSpec, _plain(value), "preprocessing")


def parse_postprocessings(value: Any) -> list[PostprocessingSpec]:
    specs = []
    for index, item in enumerate(value or []):
        if isinstance(item, PostprocessingSpec):
            specs.append(item)
        else:
            specs.append(_validate(PostprocessingSpec, _plain(item), f"postprocessings[{index}]"))
    return specs


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_unset=True) if hasattr(value, "model_dump") else value


def _validate(model: Any, value: Any, where: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        details = describe_errors(error.errors(include_url=False, include_input=False), where)
        first = details[0]
        raise ConversionFailed(
            Reason.INVALID_DECLARATION, f"{first['field']} {first['message']}.", {"errors": details}
        ) from None


def input_requests(preprocessing: PreprocessingSpec | None) -> list[Requested]:
    if preprocessing is None:
        return []
    return [
        Requested(item.tensor_name, f"preprocessing.inputs[{index}].tensor_name")
        for index, item in enumerate(preprocessing.inputs)
    ]


def output_requests(postprocessings: list[PostprocessingSpec]) -> list[Requested]:
    requested: list[Requested] = []
    for index, post in enumerate(postprocessings):
        where = f"postprocessings[{index}]"
        if post.tensors_output is not None:
            for position, name in enumerate(post.tensors_output.tensors):
                requested.append(Requested(name, f"{where}.tensors_output.tensors[{position}]"))
        if post.standard_output is not None:
            requested.append(Requested(post.standard_output.boxes_tensor, f"{where}.standard_output.boxes_tensor"))
            requested.append(Requested(post.standard_output.scores_tensor, f"{where}.standard_output.scores_tensor"))
    return requested


def check_outputs_resolve(requests: list[Requested], names: NameMap, signature: Signature) -> None:
    for requested in requests:
        if names.resolve(requested.name, "output") is None:
            raise unknown_tensor(requested.name, requested.where, "output", signature.output_names)


@dataclass
class CompletedPreprocessing:
    preprocessing: dict[str, Any]
    images: dict[str, ImageInput]  # by ONNX input name
    notes: list[str]


def complete_preprocessing(
    spec: PreprocessingSpec,
    original: Any,
    names: NameMap,
    signature: Signature,
    mean_files: Mapping[str, Path],
) -> CompletedPreprocessing:
    """Resolve each input's tensor, check the image spec fits it, fill a missing `target_size`.

    Returns the preprocessing as the user wrote it, plus any `target_size` taken from the model.
    """
    written = _plain(original) if original is not None else spec.model_dump(mode="json", exclude_unset=True)
    written = {**written, "inputs": [dict(item) for item in written.get("inputs", [])]}
    images: dict[str, ImageInput] = {}
    notes: list[str] = []
    for index, item in enumerate(spec.inputs):
        where = f"preprocessing.inputs[{index}]"
        onnx_name = names.resolve(item.tensor_name, "input")
        if onnx_name is None:
            raise unknown_tensor(item.tensor_name, f"{where}.tensor_name", "input", signature.input_names)
        tensor = signature.input(onnx_name)
        image = item.image
        order = image.dimension_order.value
        shape = tensor.shape
        if shape is not None and len(shape) != 4:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where} feeds an image ({order}) but the model input {onnx_name!r} has shape "
                f"{list(shape)}, not 4 dimensions.",
                {"tensor": onnx_name, "shape": list(shape)},
            )
        dims = dict(zip(order, shape, strict=True)) if shape is not None else {}
        channels = dims.get("C")
        if isinstance(channels, int) and channels != image.channels:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where}.image.color_channels is {image.color_channels.value} ({image.channels} channel(s)) "
                f"but the model input {onnx_name!r} has {channels} channels on its C axis ({order}).",
                {"tensor": onnx_name, "shape": list(shape or [])},
            )
        expected_dtype = _DATA_TYPES[image.data_type.value]
        if tensor.dtype != expected_dtype:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where}.image.data_type is {image.data_type.value} but the model input {onnx_name!r} "
                f"takes {tensor.dtype}.",
                {"tensor": onnx_name, "dtype": tensor.dtype},
            )
        width, height, largest = _target_size(where, image, dims, onnx_name)
        if image.target_size is None:
            written["inputs"][index].setdefault("image", {})
            written["inputs"][index]["image"] = {
                **written["inputs"][index]["image"],
                "target_size": f"{width}x{height}",
            }
            notes.append(f"{where}.image.target_size was taken from the model input shape: {width}x{height}.")
        target = TargetSize(width=width, height=height) if width and height else TargetSize(largest_side=largest)
        images[onnx_name] = ImageInput(
            spec=image,
            target=target,
            dimension_order=order,
            width=width,
            height=height,
            largest_side=largest,
            channels=image.channels,
            pixel_scaling=image.pixel_scaling,
            data_type=image.data_type.value,
            mean=_mean(where, image, mean_files, target),
        )
    return CompletedPreprocessing(preprocessing=written, images=images, notes=notes)


def _target_size(
    where: str, image: Any, dims: Mapping[str, Any], onnx_name: str
) -> tuple[int | None, int | None, int | None]:
    width, height = dims.get("W"), dims.get("H")
    fixed = isinstance(width, int) and isinstance(height, int)
    size = image.size
    if image.resize_type.value == "NETWORK":
        if size is None:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where}.image.resize_type NETWORK needs target_size 'N' (the largest side).",
            )
        if fixed:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where}.image.resize_type NETWORK needs dynamic spatial dimensions but the model input "
                f"{onnx_name!r} is fixed at {width}x{height}; use SQUASH, CROP or FILL.",
            )
        return None, None, size.largest_side
    if size is None:
        if not fixed:
            raise ConversionFailed(
                Reason.INVALID_DECLARATION,
                f"{where}.image.target_size is missing and the model input {onnx_name!r} has dynamic width "
                "or height; declare target_size 'WxH'.",
            )
        return int(width), int(height), None  # type: ignore[arg-type]  # fixed: both are int
    if fixed and (size.width, size.height) != (width, height):
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f"{where}.image.target_size is {size} but the model input {onnx_name!r} takes {width}x{height} images.",
        )
    return size.width, size.height, None


def _mean(
    where: str,
    image: Any,
    mean_files: Mapping[str, Path],
    target: TargetSize | None,
) -> np.ndarray | None:
    """The mean file, validated by the preprocessing layer itself (the workers load it the same way)."""
    from tensorgate_preprocessing.errors import PreprocessingError
    from tensorgate_preprocessing.tensors import load_mean

    if image.mean_file is None:
        return None
    path = mean_files.get(image.mean_file)
    if path is None:
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"{where}.image.mean_file {image.mean_file!r} was not uploaded with the network.",
            {"missing": [image.mean_file]},
        )
    try:
        return load_mean(path.read_bytes(), image, target=target)
    except PreprocessingError as error:
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f"{where}.image.mean_file {image.mean_file!r}: {error.message}",
            {"file": image.mean_file},
        ) from None
