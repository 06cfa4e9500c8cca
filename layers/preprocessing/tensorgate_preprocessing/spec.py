"""Preprocessing and postprocessing declared as data: the pydantic schemas (no numpy, no Pillow)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TARGET_SIDE = 8192
MAX_INPUTS = 8
TENSOR_NAME_PATTERN = r"^[^\s\x00-\x1f]{1,256}$"

TensorName = Annotated[str, Field(pattern=TENSOR_NAME_PATTERN, description="A tensor of the network.")]


class DimensionOrder(StrEnum):
    NCHW = "NCHW"
    NCWH = "NCWH"
    NHWC = "NHWC"
    NWHC = "NWHC"


class ResizeType(StrEnum):
    SQUASH = "SQUASH"
    CROP = "CROP"
    FILL = "FILL"
    NETWORK = "NETWORK"


class ColorChannels(StrEnum):
    RGB = "RGB"
    BGR = "BGR"
    L = "L"


class DataType(StrEnum):
    FLOAT32 = "FLOAT32"
    FLOAT16 = "FLOAT16"
    UINT8 = "UINT8"


class ResamplingMode(StrEnum):
    """FAST may decode large JPEGs at reduced scale, within the documented deviation bound; EXACT never does."""

    FAST = "FAST"
    EXACT = "EXACT"


class _Strict(BaseModel):
    """Unknown fields are refused, so a typo never silently falls back to a default."""

    # Schemas are built on first use: an API request builds the few models it validates, not all.
    model_config = ConfigDict(extra="forbid", use_enum_values=False, frozen=True, defer_build=True)


_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*(?:x\s*(\d+)\s*)?$", re.IGNORECASE)


class TargetSize(BaseModel):
    """`WxH` (width and height) or `N` (the largest side)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    width: int | None = None
    height: int | None = None
    largest_side: int | None = None

    @classmethod
    def parse(cls, text: str) -> TargetSize:
        match = _SIZE_PATTERN.match(text)
        if match is None:
            raise ValueError(f"target_size {text!r} must be 'WxH' (for example '224x224') or 'N' (for example '512')")
        first, second = int(match.group(1)), match.group(2)
        sides = [first] if second is None else [first, int(second)]
        if any(side < 1 or side > MAX_TARGET_SIDE for side in sides):
            raise ValueError(f"target_size {text!r} must have sides between 1 and {MAX_TARGET_SIDE} pixels")
        if second is None:
            return cls(largest_side=first)
        return cls(width=first, height=int(second))

    def __str__(self) -> str:
        if self.largest_side is not None:
            return str(self.largest_side)
        return f"{self.width}x{self.height}"


class ImageSpec(_Strict):
    """How one image becomes one input tensor (DESIGN §3)."""

    dimension_order: DimensionOrder = DimensionOrder.NHWC
    resize_type: ResizeType = ResizeType.SQUASH
    target_size: str | None = Field(
        default=None, description="'WxH', or 'N' for NETWORK; taken from the model input shape when omitted."
    )
    color_channels: ColorChannels = ColorChannels.RGB
    pixel_scaling: float = Field(default=255.0, gt=0, le=1e6)
    mean_file: str | None = Field(default=None, min_length=1, max_length=200)
    data_type: DataType = DataType.FLOAT32
    resampling: ResamplingMode | None = Field(
        default=None,
        description=(
            "FAST (the default when omitted) decodes large JPEGs at reduced scale, within mean 1.0 / max 8 "
            "(0-255) of the exact path for photographs; EXACT always decodes at full size (line art, documents, text)."
        ),
    )

    @field_validator("target_size")
    @classmethod
    def _target_size_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return str(TargetSize.parse(value))

    @model_validator(mode="after")
    def _size_matches_resize_type(self) -> Self:
        size = self.size
        if size is not None:
            if self.resize_type is ResizeType.NETWORK and size.largest_side is None:
                raise ValueError("resize_type NETWORK takes target_size 'N' (the largest side), not 'WxH'")
            if self.resize_type is not ResizeType.NETWORK and size.largest_side is not None:
                raise ValueError(f"resize_type {self.resize_type.value} takes target_size 'WxH', not a single number")
        if self.mean_file is not None:
            if not self.mean_file.endswith((".npy", ".binaryproto")):
                raise ValueError("mean_file must name a .npy file (or Caffe's .binaryproto) uploaded with the network")
            if self.data_type is DataType.UINT8:
                raise ValueError("mean_file cannot be used with data_type UINT8: UINT8 inputs are raw pixels")
        return self

    @property
    def size(self) -> TargetSize | None:
        return None if self.target_size is None else TargetSize.parse(self.target_size)

    @property
    def channels(self) -> int:
        return 1 if self.color_channels is ColorChannels.L else 3


class InputSpec(_Strict):
    tensor_name: TensorName
    image: ImageSpec


class PreprocessingSpec(_Strict):
    inputs: list[InputSpec] = Field(min_length=1, max_length=MAX_INPUTS)
    batched_output: bool = Field(default=True, description="Deprecated in v0.7; kept for compatibility.")

    @model_validator(mode="after")
    def _distinct_tensors(self) -> Self:
        names = [item.tensor_name for item in self.inputs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"each input must feed a different tensor; repeated: {', '.join(duplicates)}")
        return self

    def mean_files(self) -> list[str]:
        return [item.image.mean_file for item in self.inputs if item.image.mean_file is not None]


class DetectionSettings(_Strict):
    """Detection filters (Sense/Net names); network defaults, overridable per request."""

    bounding_box_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    iou_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_objects: int = Field(default=32, ge=1, le=1000)


class TensorsOutput(_Strict):
    tensors: list[TensorName] = Field(min_length=1, max_length=64)
    labels: list[str] | None = Field(
        default=None, max_length=100_000, description="Class names: adds top-k labelled outputs."
    )
    scores_tensor: TensorName | None = Field(
        default=None, description="The tensor the labels apply to; the first tensor when omitted."
    )
    top_k: int = Field(default=5, ge=1, le=1000)

    @model_validator(mode="after")
    def _scores_listed(self) -> Self:
        if self.scores_tensor is not None and self.scores_tensor not in self.tensors:
            raise ValueError(f"scores_tensor {self.scores_tensor!r} must be one of tensors")
        return self

    @property
    def classification_tensor(self) -> str | None:
        if self.labels is None:
            return None
        return self.scores_tensor or self.tensors[0]


class StandardOutput(DetectionSettings):
    boxes_tensor: TensorName
    scores_tensor: TensorName
    labels: list[str] | None = Field(default=None, max_length=100_000)


class PostprocessingSpec(_Strict):
    """Exactly one of `tensors_output` or `standard_output`."""

    tensors_output: TensorsOutput | None = None
    standard_output: StandardOutput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.tensors_output is None) == (self.standard_output is None):
            raise ValueError("a postprocessing takes exactly one of tensors_output or standard_output")
        return self

    def tensor_names(self) -> list[str]:
        if self.tensors_output is not None:
            return list(self.tensors_output.tensors)
        assert self.standard_output is not None
        return [self.standard_output.boxes_tensor, self.standard_output.scores_tensor]


Dimension = int | str | None


class TensorSpec(_Strict):
    """A Neuropod-style declared tensor: dtype and shape with None (any) or symbols (must agree)."""

    name: TensorName
    dtype: str = Field(pattern=r"^(float16|float32|float64|int8|int16|int32|int64|uint8|uint16|bool|string)$")
    shape: list[Dimension] = Field(max_length=16)

    @field_validator("shape")
    @classmethod
    def _dimensions(cls, shape: list[Dimension]) -> list[Dimension]:
        for dim in shape:
            if isinstance(dim, int) and dim < 0:
                raise ValueError("shape dimensions are positive integers, symbols, or null")
            if isinstance(dim, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", dim):
                raise ValueError(f"shape symbol {dim!r} must be an identifier")
        return shape


def referenced_tensors(
    preprocessing: PreprocessingSpec | None, postprocessings: list[PostprocessingSpec]
) -> dict[str, list[str]]:
    """Tensor names the network's declarations rely on, by role, for the converter to resolve."""
    inputs = [item.tensor_name for item in preprocessing.inputs] if preprocessing else []
    outputs: list[str] = []
    for post in postprocessings:
        outputs.extend(name for name in post.tensor_names() if name not in outputs)
    return {"inputs": inputs, "outputs": outputs}


def describe_errors(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as `{"field", "message"}` pairs a person can read."""
    described = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
        field = f"{prefix}.{location}" if prefix and location else (prefix or location)
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "extra_forbidden":
            message = "is not a known field"
        message = message.removeprefix("Value error, ")
        described.append({"field": field, "message": message})
    return described


# -- recognition versions (DESIGN §7): how a version reads its network's tensors, one entry per spec output

Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


class ClassificationPostProcessing(_Strict):
    """Scores of one label each, softmax or sigmoid as the network outputs them."""

    output_tensor: TensorName
    thresholds: list[Threshold] = Field(
        min_length=1, max_length=100_000, description="One per label of the spec output, in its label order."
    )


class DirectOutput(_Strict):
    """Boxes and scores as the networks' `standard_output`: N×4 normalised xmin, ymin, xmax, ymax and N×K."""

    boxes_tensor: TensorName
    scores_tensor: TensorName

    def tensor_names(self) -> list[str]:
        return [self.boxes_tensor, self.scores_tensor]


class AnchoredOutput(_Strict):
    """SSD-style outputs: box deltas against anchors (N×4 each) and scores (N×K, or N×(K+1) with a background
    column first). Anchors and the decoded boxes are normalised to the network input; a delta
    ``(dx, dy, dw, dh)`` against an anchor of centre ``(ax, ay)`` and size ``(aw, ah)`` is the box of centre
    ``(ax + dx·vx·aw, ay + dy·vy·ah)`` and size ``(aw·exp(dw·vw), ah·exp(dh·vh))``, ``v`` the variances (the
    TensorFlow Object Detection API's scale factors 10, 10, 5, 5 are variances 0.1, 0.1, 0.2, 0.2)."""

    deltas_tensor: TensorName
    scores_tensor: TensorName
    anchors_tensor: TensorName = Field(description="N×4 anchors, as the network outputs them (a constant output).")
    anchor_format: Literal["center_size", "corners"] = Field(
        default="center_size",
        description="Anchors as centre and size (cx, cy, w, h) or as corners (xmin, ymin, xmax, ymax).",
    )
    coordinate_order: Literal["xy", "yx"] = Field(
        default="xy",
        description="`yx` when deltas and anchors put y before x: (dy, dx, dh, dw) and (cy, cx, h, w) or "
        "(ymin, xmin, ymax, xmax), as the TensorFlow Object Detection API does.",
    )
    variances: list[Annotated[float, Field(gt=0.0, le=100.0)]] = Field(
        default=[0.1, 0.1, 0.2, 0.2], min_length=4, max_length=4, description="vx, vy, vw, vh."
    )
    score_activation: Literal["none", "sigmoid", "softmax"] = Field(
        default="none", description="Applied to the scores before thresholds: `none` when the network already did."
    )
    background_class: bool = Field(
        default=False, description="The scores' first column is a background class, dropped after the activation."
    )

    def tensor_names(self) -> list[str]:
        return [self.deltas_tensor, self.scores_tensor, self.anchors_tensor]


class YoloOutput(_Strict):
    """A YOLO head as YOLO tool chains export it to ONNX, boxes in network-input pixels. `v5`: N×(5+K) rows
    of cx, cy, w, h, objectness, K class scores (a box's score for a class is objectness × class score).
    `v8`: (4+K)×N, columns of cx, cy, w, h, K class scores (no objectness). `end2end`: an NMS-free model's
    final detections (YOLOv10, YOLO26), N×6 rows of x1, y1, x2, y2, score, class id, rows scoring 0 being
    padding."""

    output_tensor: TensorName
    layout: Literal["v5", "v8", "end2end"] = Field(
        description="`v5` (objectness, YOLOv5/v7), `v8` (YOLOv8/11) or `end2end` (N×6 final detections of "
        "NMS-free exports: YOLOv10, YOLO26)."
    )
    normalized: bool = Field(
        default=False, description="True when the boxes are already in [0, 1] of the network input, not pixels."
    )

    def tensor_names(self) -> list[str]:
        return [self.output_tensor]


class DetectionPostProcessing(_Strict):
    """Exactly one decoder (`direct_output`, `anchored_output` or `yolo_output`), then per-label NMS and
    thresholds."""

    direct_output: DirectOutput | None = None
    anchored_output: AnchoredOutput | None = None
    yolo_output: YoloOutput | None = None
    thresholds: list[Threshold] = Field(
        min_length=1, max_length=100_000, description="One per label of the spec output, in its label order."
    )
    nms_threshold: float = Field(
        default=0.45, ge=0.0, le=1.0, description="Boxes of one label overlapping a better one more than this go."
    )

    @model_validator(mode="after")
    def _exactly_one_decoder(self) -> Self:
        if len(self.decoders()) != 1:
            raise ValueError("a detection takes exactly one of direct_output, anchored_output or yolo_output")
        return self

    def decoders(self) -> list[DirectOutput | AnchoredOutput | YoloOutput]:
        return [item for item in (self.direct_output, self.anchored_output, self.yolo_output) if item is not None]

    @property
    def decoder(self) -> DirectOutput | AnchoredOutput | YoloOutput:
        return self.decoders()[0]


class RecognitionPostProcessing(_Strict):
    """Exactly one of `classification` or `detection`."""

    classification: ClassificationPostProcessing | None = None
    detection: DetectionPostProcessing | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.classification is None) == (self.detection is None):
            raise ValueError("a post-processing takes exactly one of classification or detection")
        return self

    @property
    def thresholds(self) -> list[float]:
        chosen = self.classification or self.detection
        assert chosen is not None
        return list(chosen.thresholds)

    def tensor_names(self) -> list[str]:
        if self.classification is not None:
            return [self.classification.output_tensor]
        assert self.detection is not None
        return self.detection.decoder.tensor_names()
