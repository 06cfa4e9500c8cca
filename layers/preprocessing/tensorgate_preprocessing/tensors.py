"""Prepared pixels to input tensors: scaling, mean, dimension order, data type, batches (DESIGN §3 steps 5-6).

- ``load_mean(npy_bytes, image_spec, target=...)`` reads and validates a ``mean_file`` once per network
  (a ``.npy``, or Caffe's ``.binaryproto`` when the name ends so, read as C×H×W and centre-cropped to the target):
  numeric, finite, at most 3 dimensions in the input's own dimension order without N (a leading N of 1
  is accepted), and broadcastable to one sample without changing its shape, e.g. ``(3, 1, 1)`` for NCHW
  or ``(1, 1, 3)`` for NHWC. It returns a float32 array ready to subtract.
- ``assemble(prepared_images, image_spec, mean)`` groups images by input size (NETWORK inputs differ)
  and writes each group straight into one preallocated batch array: no per-image tensor, no concatenate.
- ``preprocess(source, image_spec, ...)`` is the one-image shortcut: a batch of one and its transform.

Floating types compute ``x / 255 * pixel_scaling - mean`` in float32 (FLOAT16 is rounded once at the
end); UINT8 copies the pixels, without scaling or mean. Padding (FILL) is white before scaling.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .blobproto import read_blob_proto
from .errors import InvalidMeanFile
from .geometry import ImageTransform, hwc_permutation, sample_shape, spatial_axes
from .images import ImageSource, PreparedImage, prepare_image
from .spec import ColorChannels, DataType, ImageSpec, TargetSize

DTYPES = {DataType.FLOAT32: np.float32, DataType.FLOAT16: np.float16, DataType.UINT8: np.uint8}
MAX_MEAN_BYTES = 256 * 1024 * 1024
CAFFE_MEAN_SUFFIX = ".binaryproto"


@dataclass
class TensorBatch:
    """One batch array (N first, then the input's dimension order) and, per row, where it came from."""

    array: np.ndarray
    positions: list[int]
    transforms: list[ImageTransform]


def load_mean(data: bytes, image: ImageSpec, *, target: TargetSize | None = None) -> np.ndarray:
    """A validated ``mean_file`` as float32 with one axis per letter of the input's order (without N)."""
    if len(data) > MAX_MEAN_BYTES:
        raise InvalidMeanFile(f"mean_file is larger than {MAX_MEAN_BYTES // (1024 * 1024)} MB.")
    if image.mean_file is not None and image.mean_file.endswith(CAFFE_MEAN_SUFFIX):
        return _checked_mean(_caffe_mean(data, image, target), image, target)
    if data[:2] == b"PK":
        raise InvalidMeanFile("mean_file must be one array saved with numpy.save (.npy), not an .npz archive.")
    if not data.startswith(b"\x93NUMPY"):
        raise InvalidMeanFile("mean_file is not a readable .npy file; save it with numpy.save.")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise InvalidMeanFile(
                "mean_file holds Python objects; save a numeric array with numpy.save(..., allow_pickle=False)."
            ) from None
        raise InvalidMeanFile("mean_file is not a readable .npy file; save it with numpy.save.") from None
    except Exception:
        raise InvalidMeanFile("mean_file is not a readable .npy file; save it with numpy.save.") from None
    if loaded.dtype.kind not in "iuf":
        raise InvalidMeanFile(f"mean_file must hold integers or floats, not {loaded.dtype}.")
    return _checked_mean(loaded, image, target)


def _caffe_mean(data: bytes, image: ImageSpec, target: TargetSize | None) -> np.ndarray:
    """A Caffe mean (1×C×H×W, channels in the network's order) in the input's own dimension order.

    Caffe's data layer subtracts the mean before cropping at test time, taking the centre of a larger
    mean (ImageNet's 256×256 mean for 224×224 inputs): a mean larger than the target is cropped the same way.
    """
    blob = read_blob_proto(data)
    if blob.ndim == 4 and blob.shape[0] == 1:
        blob = blob[0]
    if blob.ndim != 3:
        raise InvalidMeanFile(f"mean_file holds a blob of shape {list(blob.shape)}; a Caffe mean is 1×C×H×W.")
    size = target if target is not None else image.size
    if size is not None and size.width is not None and size.height is not None:
        height, width = blob.shape[1:]
        if height > size.height and width > size.width:
            top, left = (height - size.height) // 2, (width - size.width) // 2
            blob = blob[:, top : top + size.height, left : left + size.width]
    return np.transpose(blob, ["CHW".index(axis) for axis in spatial_axes(image.dimension_order)])


def _checked_mean(loaded: np.ndarray, image: ImageSpec, target: TargetSize | None) -> np.ndarray:
    array = loaded[0] if loaded.ndim == 4 and loaded.shape[0] == 1 else loaded
    expected = _mean_axes(image, target)
    axes = spatial_axes(image.dimension_order)
    example = tuple(image.channels if axis == "C" else 1 for axis in axes)
    wanted = "x".join("?" if size is None else str(size) for size in expected)
    if array.ndim > 3:
        raise InvalidMeanFile(
            f"mean_file has shape {loaded.shape}; it must be at most 3-dimensional in the input's "
            f"{axes} order, for example {example} for one value per channel."
        )
    shape = (1,) * (3 - array.ndim) + array.shape
    for size, allowed in zip(shape, expected, strict=True):
        if size != 1 and size != allowed:
            raise InvalidMeanFile(
                f"mean_file has shape {loaded.shape}, which does not broadcast to one {axes} input of "
                f"{wanted}; use for example {example} "
                "for one value per channel."
            )
    mean = np.ascontiguousarray(array, dtype=np.float32).reshape(shape)
    if not np.isfinite(mean).all():
        raise InvalidMeanFile("mean_file holds NaN or infinite values.")
    return mean


def _mean_axes(image: ImageSpec, target: TargetSize | None) -> tuple[int | None, ...]:
    """Per-sample sizes the mean may take on each axis; None where the size varies (NETWORK)."""
    target = target if target is not None else image.size
    width = height = None
    if target is not None and target.width is not None:
        width, height = target.width, target.height
    sizes = {"C": image.channels, "W": width, "H": height}
    return tuple(sizes[axis] for axis in spatial_axes(image.dimension_order))


class BatchWriter:
    """One preallocated batch array for ``count`` images of one input size; ``write`` fills a row."""

    def __init__(
        self, image: ImageSpec, input_size: tuple[int, int], count: int, mean: np.ndarray | None = None
    ) -> None:
        self.image = image
        self.mean = mean
        self.array = np.empty((count, *sample_shape(image, input_size)), dtype=DTYPES[image.data_type])
        # FLOAT16 is computed in float32 and rounded once, through one reused scratch sample.
        self._scratch = np.empty(self.array.shape[1:], np.float32) if self.array.dtype == np.float16 else None

    def write(self, row: int, pixels: np.ndarray) -> None:
        write_sample(pixels, self.array[row], self.image, self.mean, self._scratch)


def assemble(prepared: Sequence[PreparedImage], image: ImageSpec, mean: np.ndarray | None = None) -> list[TensorBatch]:
    """Write prepared images into one batch array per input size, in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for position, item in enumerate(prepared):
        groups.setdefault(item.transform.input_size, []).append(position)
    batches = []
    for size, positions in groups.items():
        writer = BatchWriter(image, size, len(positions), mean)
        for row, position in enumerate(positions):
            writer.write(row, prepared[position].pixels)
        batches.append(TensorBatch(writer.array, positions, [prepared[p].transform for p in positions]))
    return batches


def write_sample(
    pixels: np.ndarray,
    out: np.ndarray,
    image: ImageSpec,
    mean: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> None:
    """One image's pixels into ``out`` (a sample of a batch, in the input's order and data type)."""
    source = _layout(pixels, image)
    if out.dtype == np.uint8:
        np.copyto(out, source)
        return
    target = out if out.dtype == np.float32 else (scratch if scratch is not None else np.empty(out.shape, np.float32))
    np.multiply(source, np.float32(image.pixel_scaling / 255.0), out=target, dtype=np.float32)
    if mean is not None:
        np.subtract(target, mean, out=target)
    if target is not out:
        np.copyto(out, target, casting="same_kind")


def _layout(pixels: np.ndarray, image: ImageSpec) -> np.ndarray:
    """A view of the pixels in the sample's channel order and dimension order."""
    if pixels.ndim == 2:
        column = pixels[:, :, np.newaxis]
        hwc = column if image.channels == 1 else np.broadcast_to(column, (*pixels.shape, 3))
    elif image.channels == 1:
        raise ValueError("an L input takes one-channel pixels; prepare_image converts them")
    else:
        hwc = pixels[:, :, ::-1] if image.color_channels == ColorChannels.BGR else pixels
    return hwc.transpose(hwc_permutation(image.dimension_order))


def preprocess(
    source: ImageSource,
    image: ImageSpec,
    *,
    mean: np.ndarray | None = None,
    **options: Any,
) -> tuple[np.ndarray, ImageTransform]:
    """One source to a batch of one (``prepare_image`` options apply) and its transform."""
    prepared = prepare_image(source, image, **options)
    (batch,) = assemble([prepared], image, mean)
    return batch.array, prepared.transform
