"""Requests to model feeds: every input of every sample prepared, grouped by shape, written into batches.

The worker hands ``build_batches`` the samples it dequeued (one sample = one image per network input,
in ``preprocessing.inputs`` order) and gets back ``SampleBatch`` groups, each a dict of feeds ready for
``session.run`` and the transforms to map boxes back, plus a per-sample error for the samples that
could not be prepared (those fail alone; the rest of the batch runs). Samples whose NETWORK inputs
come out at different sizes land in different groups. Pass a thread pool as ``executor`` to decode
several images at once (Pillow releases the GIL while decoding and resampling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PreprocessingError
from .geometry import ImageTransform, NormalizedBox, Point, resolve_target_size
from .images import ImageSource, PreparedImage, prepare_image
from .spec import PreprocessingSpec, TargetSize
from .tensors import BatchWriter


class WrongInputCount(PreprocessingError):
    """A sample with a different number of images than the network has inputs."""


@dataclass(frozen=True)
class ImageInput:
    """One image of a request: its source and the optional request region (``bbox`` or ``polygon``)."""

    source: ImageSource
    bbox: NormalizedBox | Mapping[str, Any] | None = None
    polygon: Sequence[Point] | Sequence[Mapping[str, Any]] | None = None
    crop_uniform_background: bool = False


@dataclass
class SampleBatch:
    """Samples (by position in the caller's list) that share input shapes, as model feeds."""

    positions: list[int]
    feeds: dict[str, np.ndarray]
    transforms: list[list[ImageTransform]]


@dataclass
class BatchPlan:
    batches: list[SampleBatch] = field(default_factory=list)
    errors: dict[int, PreprocessingError] = field(default_factory=dict)


def build_batches(
    samples: Sequence[Sequence[ImageInput]],
    preprocessing: PreprocessingSpec,
    *,
    means: Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, TargetSize] | None = None,
    max_batch_size: int | None = None,
    executor: Executor | None = None,
    **prepare_options: Any,
) -> BatchPlan:
    """Prepare every sample and write them into as few batches as their shapes allow.

    ``means`` and ``targets`` are keyed by tensor name: the loaded ``mean_file`` arrays (``load_mean``)
    and the target sizes resolved against the model (``resolve_target_size``); declared target sizes
    are used when ``targets`` omits an input.
    """
    means = means or {}
    inputs = preprocessing.inputs
    resolved = {item.tensor_name: (targets or {}).get(item.tensor_name) for item in inputs}
    plan = BatchPlan()

    def prepare(position: int) -> list[PreparedImage] | PreprocessingError:
        sample = samples[position]
        if len(sample) != len(inputs):
            return WrongInputCount(
                f"The network takes {len(inputs)} image input(s) but the request sent {len(sample)}."
            )
        try:
            return [
                prepare_image(
                    image_input.source,
                    spec.image,
                    bbox=image_input.bbox,
                    polygon=image_input.polygon,
                    crop_uniform_background=image_input.crop_uniform_background,
                    target=resolved[spec.tensor_name] or resolve_target_size(spec.image),
                    **prepare_options,
                )
                for image_input, spec in zip(sample, inputs, strict=True)
            ]
        except PreprocessingError as error:
            return error

    positions = range(len(samples))
    outcomes = list(executor.map(prepare, positions)) if executor else [prepare(p) for p in positions]

    groups: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for position, outcome in enumerate(outcomes):
        if isinstance(outcome, PreprocessingError):
            plan.errors[position] = outcome
        else:
            shape_key = tuple(prepared.transform.input_size for prepared in outcome)
            groups.setdefault(shape_key, []).append(position)

    limit = max_batch_size or len(samples) or 1
    for shape_key, members in groups.items():
        for start in range(0, len(members), limit):
            chunk = members[start : start + limit]
            feeds = {}
            for index, spec in enumerate(inputs):
                writer = BatchWriter(spec.image, shape_key[index], len(chunk), means.get(spec.tensor_name))
                for row, position in enumerate(chunk):
                    writer.write(row, outcomes[position][index].pixels)  # type: ignore[index]
                feeds[spec.tensor_name] = writer.array
            transforms = [[prepared.transform for prepared in outcomes[p]] for p in chunk]  # type: ignore[union-attr]
            plan.batches.append(SampleBatch(chunk, feeds, transforms))
    return plan
