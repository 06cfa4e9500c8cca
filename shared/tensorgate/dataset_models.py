"""Datasets, their versions and splits (DESIGN §9): records as stored, requests as validated, bodies as answered."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tensorgate.models import iso_z

# Items per manifest chunk (one JSON Lines object and one image shard each): a page of at most 100 items
# reads one or two chunks, whatever the size of the version or split.
CHUNK_ITEMS = 1000
# Per-item errors kept on the record; every one is in the errors file the `/errors` route pages through.
MAX_RECORD_ERRORS = 20
MAX_CLASSES = 10_000
MAX_PARTS = 10
MAX_TRANSFORMATIONS = 10
FIRST_VERSION = "v1"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_PATTERN = f"^{VERSION_NAME.pattern}$"

Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]


class DatasetKind(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"


class DatasetStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    ERROR = "error"
    CANCELLED = "cancelled"


class _Record(BaseModel):
    model_config = ConfigDict(validate_assignment=True, defer_build=True)


class Dataset(_Record):
    """A dataset: what it was created with and how its last extraction ended. Its items are in version `v1`."""

    account_id: str
    dataset_id: int
    name: str
    description: str = ""
    author: str
    kind: DatasetKind
    classes: dict[str, int] | None = None
    collection_date: date | None = None
    archive_key: str
    labels_key: str | None = None
    attempt: int = 1
    task_id: int
    status: DatasetStatus = DatasetStatus.PENDING
    extraction: dict[str, Any] | None = None
    error: str | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    claimed_at: datetime | None = None


class DatasetVersion(_Record):
    """A version of a dataset's items: `v1` from the extraction, others from a transformation of a version."""

    account_id: str
    dataset_id: int
    number: int
    name: str
    description: str = ""
    author: str
    source: str | None = None
    transformations: list[dict[str, Any]] = Field(default_factory=list)
    task_id: int
    status: DatasetStatus = DatasetStatus.PENDING
    items: int = 0
    classes: dict[str, int] = Field(default_factory=dict)
    label_counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    claimed_at: datetime | None = None


class DatasetSplit(_Record):
    """Named parts of a version by percentage, drawn by a seed and stratified by label."""

    account_id: str
    split_id: int
    dataset_id: int
    dataset_name: str
    version_name: str
    name: str
    description: str = ""
    author: str
    parts: list[dict[str, Any]]
    seed: int
    stratify: bool = True
    exclude_labels: list[str] = Field(default_factory=list)
    task_id: int
    status: DatasetStatus = DatasetStatus.PENDING
    counts: dict[str, int] = Field(default_factory=dict)
    excluded: int = 0
    error: str | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    claimed_at: datetime | None = None


class DatasetEvaluation(_Record):
    """A network, recognition version, spec or endpoint run over one part of a split through a batch job, and the
    metrics its answers earn."""

    account_id: str
    evaluation_id: int
    dataset_id: int
    split_id: int
    part: str
    network_id: int
    # The target as given (one of EVALUATION_TARGETS); empty for the records made before targets, a network's.
    target: dict[str, int] = Field(default_factory=dict)
    kind: DatasetKind = DatasetKind.CLASSIFICATION
    output_tensor: str | None = None
    # Through a recognition version: which of the spec's outputs holds the predictions scored, and the dataset's
    # classes none of its labels names (scored as never predicted).
    recognition_output: int | None = None
    classes_without_label: list[str] = Field(default_factory=list)
    author: str
    task_id: int
    job_id: int | None = None
    status: DatasetStatus = DatasetStatus.PENDING
    metrics: dict[str, Any] | None = None
    plots: list[str] = Field(default_factory=list)
    error: str | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    claimed_at: datetime | None = None


# -- requests ---------------------------------------------------------------------------------------------


def parse_collection_date(value: Any) -> Any:
    """SBrain wrote `mm-dd-yyyy`; ISO 8601 `yyyy-mm-dd` is taken too."""
    if isinstance(value, str) and re.fullmatch(r"\d{2}-\d{2}-\d{4}", value):
        month, day, year = value.split("-")
        try:
            return date(int(year), int(month), int(day))
        except ValueError:
            raise ValueError(f"{value!r} is not a date (mm-dd-yyyy)") from None
    return value


class CreateDataset(BaseModel):
    """A JSON create: the answer carries a presigned POST for the archive, whose arrival starts the extraction."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name = Field(description="Unique in the account; `lookup?name=` finds it.")
    description: Description = ""
    kind: DatasetKind = Field(
        default=DatasetKind.CLASSIFICATION,
        description="`classification` (one label or several per image) or `detection` (boxes with labels).",
    )
    classes: dict[Annotated[str, Field(min_length=1, max_length=200)], Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        description='Class names and their numeric ids, e.g. {"cat": 0, "dog": 1}; derived from the labels '
        "(sorted by name) when absent. A label outside a declared set is an item error.",
    )
    collection_date: date | None = Field(
        default=None, description="When the data was collected: yyyy-mm-dd, or SBrain's mm-dd-yyyy."
    )
    archive_name: str = Field(
        default="dataset.zip", description="The archive's file name: .zip, .tar.gz or .tgz.", max_length=200
    )

    _date = field_validator("collection_date", mode="before")(parse_collection_date)

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name at least one class, or be left out to derive them")
        if len(value) > MAX_CLASSES:
            raise ValueError(f"must hold at most {MAX_CLASSES} classes")
        if len(set(value.values())) != len(value):
            raise ValueError("must give each class its own id")
        return value


class RetryDataset(BaseModel):
    """SBrain's `retry_create`: extract again, with a corrected label file when `labels_name` is given."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    labels_name: str | None = Field(
        default=None,
        max_length=200,
        description="The corrected label file's name (.csv, .jsonl or COCO .json): the answer carries a presigned "
        "POST for it, and its arrival starts the extraction. Absent: the extraction runs again at once.",
    )
    classes: dict[Annotated[str, Field(min_length=1, max_length=200)], Annotated[int, Field(ge=0)]] | None = None
    collection_date: date | None = None

    _date = field_validator("collection_date", mode="before")(parse_collection_date)


class Transformation(BaseModel):
    """One step of a transformation set, declared as data; run by the preprocessing layer's image code."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    resize: Annotated[str, Field(pattern=r"^\d{1,5}x\d{1,5}$")] | None = Field(
        default=None, description="`WxH`: squash to that size (bilinear)."
    )
    center_crop: Annotated[str, Field(pattern=r"^\d{1,5}x\d{1,5}$")] | None = Field(
        default=None, description="`WxH`: the centre part of that size (smaller images keep their side)."
    )
    grayscale: bool | None = Field(default=None, description="true: one luma channel (ITU-R 601).")
    horizontal_flip: bool | None = Field(default=None, description="true: mirrored left to right.")
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Re-encode as JPEG at this quality (1-100)."
    )

    @model_validator(mode="after")
    def _one_step(self) -> Transformation:
        steps = [name for name, value in self.model_dump(exclude_none=True).items() if value not in (None, False)]
        if len(steps) != 1:
            raise ValueError(
                "each transformation names exactly one step: resize, center_crop, grayscale, "
                "horizontal_flip or jpeg_quality"
            )
        for name in ("resize", "center_crop"):
            size = getattr(self, name)
            if size is not None and 0 in (int(part) for part in size.split("x")):
                raise ValueError(f"{name} needs a width and height of at least 1")
        return self


class CreateDatasetVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="The new version's name, unique in the dataset (letters, digits, '.', '_', '-')."
    )
    description: Description = ""
    source: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        default=FIRST_VERSION, description="The version transformed."
    )
    transformations: list[Transformation] = Field(
        min_length=1, max_length=MAX_TRANSFORMATIONS, description="Applied to every image in this order."
    )


class SplitPart(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    percentage: float = Field(gt=0, le=100)


class CreateDatasetSplit(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(description="Unique among the splits of the version.")
    version: Annotated[str, Field(pattern=NAME_PATTERN)] = FIRST_VERSION
    description: Description = ""
    parts: list[SplitPart] = Field(
        min_length=1, max_length=MAX_PARTS, description="Named parts whose percentages sum to 100."
    )
    seed: int = Field(default=0, ge=0, le=2**63 - 1, description="The same seed draws the same items.")
    stratify: bool = Field(default=True, description="Each label spread over the parts in their proportions.")
    exclude_labels: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=MAX_CLASSES,
        description="Labels left out: an item keeps its other labels, and is left out when none remains.",
    )

    @model_validator(mode="after")
    def _parts(self) -> CreateDatasetSplit:
        names = [part.name for part in self.parts]
        if len(set(names)) != len(names):
            raise ValueError("parts must have distinct names")
        total = sum(part.percentage for part in self.parts)
        if abs(total - 100) > 1e-6:
            raise ValueError(f"part percentages must sum to 100, not {total:g}")
        return self


EVALUATION_TARGETS = ("network_id", "recognition_version_id", "recognition_spec_id", "endpoint_id")
TargetId = Annotated[int, Field(ge=1, le=10**18 - 1)]


class CreateDatasetEvaluation(BaseModel):
    """Run a target over one part of a ready split (a batch job), then score its answers."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    network_id: TargetId | None = Field(
        default=None, description="Target: a ready network, its scores read by index (classification only)."
    )
    recognition_version_id: TargetId | None = Field(
        default=None, description="Target: a recognition version, its labelled predictions read by label name."
    )
    recognition_spec_id: TargetId | None = Field(
        default=None, description="Target: a recognition spec, through its current version when the job starts."
    )
    endpoint_id: TargetId | None = Field(default=None, description="Target: a running endpoint's target.")
    part: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(default="test", description="The split's part scored.")
    output_tensor: str | None = Field(
        default=None,
        max_length=200,
        description="Through a network: the output holding one score per class, index k for class id k; the "
        "network's first by default.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> CreateDatasetEvaluation:
        if len(self.target()) != 1:
            raise ValueError(f"name exactly one target of {', '.join(EVALUATION_TARGETS)}")
        return self

    def target(self) -> dict[str, int]:
        return {name: value for name in EVALUATION_TARGETS if (value := getattr(self, name)) is not None}


# -- answers ----------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class UploadBody(_Body):
    url: str = Field(description="POST the file here as multipart/form-data: `fields` first, then `file`.")
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_in: int


class DatasetBody(_Body):
    id: int
    name: str
    description: str
    author: str
    kind: DatasetKind
    classes: dict[str, int] | None = Field(description="Declared at creation, or derived by the extraction.")
    collection_date: str | None = Field(description="yyyy-mm-dd, or null.")
    status: DatasetStatus = Field(description="`ready` once extracted (with or without item errors).")
    task_id: int = Field(description="The latest extraction task: its data holds the progress while it runs.")
    attempt: int = Field(description="1 for the first extraction, one more per retry.")
    extraction: dict[str, Any] | None = Field(
        description="The last extraction's summary: layout, items, item_errors, classes, label_counts, errors (the "
        "first ones; all under /errors)."
    )
    error: str | None
    upload: UploadBody | None = Field(default=None, description="On create and retry: where to POST the file.")
    create_date: str
    update_date: str


class DatasetPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[DatasetBody]


class DatasetVersionBody(_Body):
    dataset_id: int
    name: str
    description: str
    author: str
    source: str | None = Field(description="The version this one was transformed from; null for v1.")
    transformations: list[dict[str, Any]]
    status: DatasetStatus
    task_id: int
    items: int
    classes: dict[str, int]
    label_counts: dict[str, int]
    error: str | None
    create_date: str
    update_date: str


class DatasetVersionPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[DatasetVersionBody]


class DatasetSplitBody(_Body):
    id: int
    dataset_id: int
    dataset_name: str
    version: str
    name: str
    description: str
    author: str
    parts: list[dict[str, Any]]
    seed: int
    stratify: bool
    exclude_labels: list[str]
    status: DatasetStatus
    task_id: int
    counts: dict[str, int] = Field(description="Items in each part once drawn.")
    excluded: int = Field(description="Items left out by exclude_labels.")
    error: str | None
    create_date: str
    update_date: str


class DatasetSplitPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[DatasetSplitBody]


class DatasetObject(_Body):
    label: str
    box: list[float] = Field(description="[xmin, ymin, xmax, ymax] in the image's pixels.")


class DatasetItemBody(_Body):
    index: int = Field(description="The item's place in its version.")
    name: str = Field(description="The image's path in the archive.")
    labels: list[str]
    objects: list[DatasetObject] | None = Field(default=None, description="Detection datasets: the boxes.")
    width: int
    height: int


class DatasetItemPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[DatasetItemBody]


class DatasetItemError(_Body):
    item: str = Field(description="The image or label line concerned.")
    error: str


class DatasetItemErrorPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[DatasetItemError]


def dataset_wire(dataset: Dataset, upload: dict[str, Any] | None = None) -> dict[str, Any]:
    body = DatasetBody(
        id=dataset.dataset_id,
        name=dataset.name,
        description=dataset.description,
        author=dataset.author,
        kind=dataset.kind,
        classes=dataset.classes if dataset.classes is not None else (dataset.extraction or {}).get("classes"),
        collection_date=None if dataset.collection_date is None else dataset.collection_date.isoformat(),
        status=dataset.status,
        task_id=dataset.task_id,
        attempt=dataset.attempt,
        extraction=dataset.extraction,
        error=dataset.error,
        upload=None if upload is None else UploadBody.model_validate(upload),
        create_date=iso_z(dataset.create_date),
        update_date=iso_z(dataset.update_date),
    )
    return body.model_dump(mode="json", exclude={"upload"} if upload is None else set())


def version_wire(version: DatasetVersion) -> dict[str, Any]:
    return DatasetVersionBody(
        dataset_id=version.dataset_id,
        name=version.name,
        description=version.description,
        author=version.author,
        source=version.source,
        transformations=version.transformations,
        status=version.status,
        task_id=version.task_id,
        items=version.items,
        classes=version.classes,
        label_counts=version.label_counts,
        error=version.error,
        create_date=iso_z(version.create_date),
        update_date=iso_z(version.update_date),
    ).model_dump(mode="json")


def split_wire(split: DatasetSplit) -> dict[str, Any]:
    return DatasetSplitBody(
        id=split.split_id,
        dataset_id=split.dataset_id,
        dataset_name=split.dataset_name,
        version=split.version_name,
        name=split.name,
        description=split.description,
        author=split.author,
        parts=split.parts,
        seed=split.seed,
        stratify=split.stratify,
        exclude_labels=split.exclude_labels,
        status=split.status,
        task_id=split.task_id,
        counts=split.counts,
        excluded=split.excluded,
        error=split.error,
        create_date=iso_z(split.create_date),
        update_date=iso_z(split.update_date),
    ).model_dump(mode="json")


def item_wire(line: dict[str, Any]) -> dict[str, Any]:
    """A manifest line as answered: where its bytes are stored stays inside."""
    body = {name: line[name] for name in ("index", "name", "labels", "width", "height")}
    if line.get("objects") is not None:
        body["objects"] = line["objects"]
    return body


class EvaluationBody(_Body):
    id: int
    dataset_id: int
    split_id: int
    part: str
    kind: DatasetKind = Field(description="`classification` or `detection`, as the dataset.")
    network_id: int = Field(description="The network the items run on (the target's, for a version, spec or endpoint).")
    recognition_version_id: int | None = Field(description="The target, when a recognition version.")
    recognition_spec_id: int | None = Field(description="The target, when a recognition spec.")
    endpoint_id: int | None = Field(description="The target, when an endpoint.")
    output_tensor: str | None
    status: DatasetStatus = Field(description="`ready` once the job ended and its answers were scored.")
    task_id: int = Field(description="The evaluation's task (kind `evaluation`).")
    job_id: int | None = Field(description="The batch job that ran the network over the part's images.")
    metrics: dict[str, Any] | None = Field(
        description="Classification: accuracy, top_5, macro and per_class precision/recall/f1, confusion_matrix (rows "
        "true, columns predicted), labels. Detection: map_50, map_50_95, per_class ap_50, ap_50_95 and ground_truths. "
        "Both: items scored, failed items; through a recognition version, classes_without_label (the dataset's "
        "classes no label names, scored as never predicted)."
    )
    plots: dict[str, str] = Field(
        description="PNG images by name (`confusion_matrix`, or `precision_recall` for detection): presigned GET "
        "URLs, an hour."
    )
    error: str | None
    create_date: str
    update_date: str


def evaluation_wire(evaluation: DatasetEvaluation, plot_urls: dict[str, str]) -> dict[str, Any]:
    return EvaluationBody(
        id=evaluation.evaluation_id,
        dataset_id=evaluation.dataset_id,
        split_id=evaluation.split_id,
        part=evaluation.part,
        kind=evaluation.kind,
        network_id=evaluation.network_id,
        recognition_version_id=evaluation.target.get("recognition_version_id"),
        recognition_spec_id=evaluation.target.get("recognition_spec_id"),
        endpoint_id=evaluation.target.get("endpoint_id"),
        output_tensor=evaluation.output_tensor,
        status=evaluation.status,
        task_id=evaluation.task_id,
        job_id=evaluation.job_id,
        metrics=evaluation.metrics,
        plots=plot_urls,
        error=evaluation.error,
        create_date=iso_z(evaluation.create_date),
        update_date=iso_z(evaluation.update_date),
    ).model_dump(mode="json")
