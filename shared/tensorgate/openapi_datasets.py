"""The datasets routes of the OpenAPI document (DESIGN §9), added to `openapi.OPERATIONS`."""

from __future__ import annotations

from typing import Any

from tensorgate.dataset_models import (
    VERSION_NAME,
    CreateDataset,
    CreateDatasetEvaluation,
    CreateDatasetSplit,
    CreateDatasetVersion,
    DatasetBody,
    DatasetItemErrorPage,
    DatasetItemPage,
    DatasetPage,
    DatasetSplitBody,
    DatasetSplitPage,
    DatasetVersionBody,
    DatasetVersionPage,
    EvaluationBody,
    RetryDataset,
)
from tensorgate.openapi import LIST_FILTERS, LOOKUP_NAME, PAGINATION, Operation, Success, _path_id

TAG = "datasets"
DATASET_ID = _path_id("dataset_id", "dataset")
SPLIT_ID = _path_id("split_id", "split")
EVALUATION_ID = _path_id("evaluation_id", "evaluation")
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "The version's name, e.g. `v1`.",
    "schema": {"type": "string", "pattern": f"^{VERSION_NAME.pattern}$"},
}


CANCEL = (
    "As a batch job's cancel: the record and its task end `cancelled` at once, the worker stops at its next chunk of "
    "1,000 items and removes what it wrote. Cancelling a cancelled job answers it again."
)
ENDED = "The job has ended (ready or error): only a pending one can be cancelled."


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }


NOT_FOUND = "No dataset with this id in this account (another account's answers the same way)."
DATASET_LINKS = {
    "GetDataset": {"operationId": "GetDataset", "parameters": {"dataset_id": "$response.body#/id"}},
    "GetExtractionTask": {"operationId": "GetTask", "parameters": {"task_id": "$response.body#/task_id"}},
}

DATASET_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/v0.7/datasets",
        "CreateDataset",
        TAG,
        "Create a dataset from an archive uploaded with the presigned POST answered",
        description=(
            "The answer's `upload` is a presigned POST for one archive (.zip, .tar.gz) in one of the layouts people "
            "have: a folder per class; images with a labels.csv (`image,label[,label…]`) or labels.jsonl; a COCO "
            "instances.json for detection. Its arrival starts the extraction (task `task_id`, kind `dataset`, "
            "with progress); unreadable images and labels naming no image are item errors, not fatal."
        ),
        body={"application/json": CreateDataset},
        body_example={"name": "pets", "description": "cats and dogs", "archive_name": "pets.zip"},
        success=Success(201, "The dataset, `pending`, with `upload`.", DatasetBody, links=DATASET_LINKS),
        errors={400: "Invalid fields, or a name another dataset of the account has.", 413: None, 415: None},
    ),
    Operation(
        "GET",
        "/v0.7/datasets",
        "ListDatasets",
        TAG,
        "List or search the account's datasets",
        parameters=(*PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of datasets, oldest first.", DatasetPage),
        errors={400: None},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/lookup",
        "LookupDataset",
        TAG,
        "Find the dataset with exactly this name",
        parameters=(LOOKUP_NAME,),
        success=Success(200, "The dataset.", DatasetBody),
        errors={400: "`name` is missing.", 404: "No dataset of this account has exactly this name."},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/splits/lookup",
        "LookupDatasetSplit",
        TAG,
        "Find a split by its dataset's, version's and own exact names",
        parameters=(
            _query("dataset", "The dataset's exact name."),
            _query("version", "The version's exact name, e.g. v1."),
            _query("name", "The split's exact name."),
        ),
        success=Success(200, "The split.", DatasetSplitBody),
        errors={400: "A name is missing.", 404: "No such dataset, or no such split of that version."},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}",
        "GetDataset",
        TAG,
        "Get a dataset and how its extraction went",
        parameters=(DATASET_ID,),
        success=Success(200, "The dataset.", DatasetBody),
        errors={404: NOT_FOUND},
    ),
    Operation(
        "DELETE",
        "/v0.7/datasets/{dataset_id}",
        "DeleteDataset",
        TAG,
        "Delete a dataset with its versions, splits and files",
        parameters=(DATASET_ID,),
        success=Success(204, "Deleted."),
        errors={404: NOT_FOUND},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/cancel",
        "CancelDatasetExtraction",
        TAG,
        "Cancel a pending extraction",
        description=CANCEL + " `retry` extracts again.",
        parameters=(DATASET_ID,),
        success=Success(200, "The dataset, `cancelled` (and its v1).", DatasetBody),
        errors={404: NOT_FOUND, 409: ENDED},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/versions/{version}/cancel",
        "CancelDatasetVersion",
        TAG,
        "Cancel a pending transformation",
        description=CANCEL + " No item of the version is left.",
        parameters=(DATASET_ID, VERSION),
        success=Success(200, "The version, `cancelled`.", DatasetVersionBody),
        errors={400: "`v1`: cancel the dataset's extraction instead.", 404: NOT_FOUND, 409: ENDED},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/retry",
        "RetryDataset",
        TAG,
        "Extract again, with a corrected label file",
        description=(
            "With `labels_name`, the answer's `upload` takes the corrected label file, whose arrival starts the "
            "extraction; without it, the extraction runs again at once. `classes` and `collection_date` replace "
            "the dataset's when given."
        ),
        parameters=(DATASET_ID,),
        body={"application/json": RetryDataset},
        body_example={"labels_name": "labels.csv"},
        success=Success(200, "The dataset, `pending` again, with a new `task_id`.", DatasetBody),
        errors={
            400: None,
            404: NOT_FOUND,
            409: "The last extraction has not ended, or versions or splits were made from the items.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/errors",
        "ListDatasetItemErrors",
        TAG,
        "The last extraction's item errors",
        parameters=(DATASET_ID, *PAGINATION),
        success=Success(200, "One page of item errors, in the order met.", DatasetItemErrorPage),
        errors={400: None, 404: NOT_FOUND},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/versions",
        "ListDatasetVersions",
        TAG,
        "List or search a dataset's versions",
        parameters=(DATASET_ID, *PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of versions, v1 first.", DatasetVersionPage),
        errors={400: None, 404: NOT_FOUND},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/versions",
        "CreateDatasetVersion",
        TAG,
        "Create a version by a transformation set applied to a version",
        description=(
            "Steps, in order, one key each: `resize` and `center_crop` (`WxH`), `grayscale`, `horizontal_flip`, "
            "`jpeg_quality` (1-100). Boxes follow. The version is `pending` until its task (kind "
            "`transformation`) ends."
        ),
        parameters=(DATASET_ID,),
        body={"application/json": CreateDatasetVersion},
        body_example={"name": "small", "transformations": [{"resize": "128x128"}, {"jpeg_quality": 80}]},
        success=Success(201, "The version, `pending`.", DatasetVersionBody),
        errors={
            400: "Invalid steps, or a name another version of the dataset has.",
            404: "No such dataset, or no such source version.",
            409: "The source version is not ready.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/versions/{version}",
        "GetDatasetVersion",
        TAG,
        "Get a version of a dataset",
        parameters=(DATASET_ID, VERSION),
        success=Success(200, "The version.", DatasetVersionBody),
        errors={404: "No such dataset or version."},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/versions/{version}/items",
        "ListDatasetVersionItems",
        TAG,
        "A version's items: names, labels, boxes, sizes",
        parameters=(DATASET_ID, VERSION, *PAGINATION),
        success=Success(200, "One page of items, in index order.", DatasetItemPage),
        errors={400: None, 404: "No such dataset or version.", 409: "The version is not ready."},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/splits",
        "ListDatasetSplits",
        TAG,
        "List or search a dataset's splits",
        parameters=(DATASET_ID, *PAGINATION, *LIST_FILTERS),
        success=Success(200, "One page of splits, oldest first.", DatasetSplitPage),
        errors={400: None, 404: NOT_FOUND},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/splits",
        "CreateDatasetSplit",
        TAG,
        "Split a version into named parts by percentage",
        description=(
            "Parts' percentages sum to 100; `seed` makes the draw reproducible; `stratify` (default true) spreads "
            "each label over the parts in their proportions; `exclude_labels` leaves labels out. The split is "
            "`pending` until its task (kind `split`) ends."
        ),
        parameters=(DATASET_ID,),
        body={"application/json": CreateDatasetSplit},
        body_example={
            "name": "holdout",
            "version": "v1",
            "parts": [{"name": "train", "percentage": 80}, {"name": "test", "percentage": 20}],
            "seed": 7,
        },
        success=Success(201, "The split, `pending`.", DatasetSplitBody),
        errors={
            400: "Invalid parts, an excluded label no item has, or a name another split of the version has.",
            404: "No such dataset or version.",
            409: "The version is not ready.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/splits/{split_id}",
        "GetDatasetSplit",
        TAG,
        "Get a split and its parts' sizes",
        parameters=(DATASET_ID, SPLIT_ID),
        success=Success(200, "The split.", DatasetSplitBody),
        errors={404: "No such dataset, or no such split of it."},
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/splits/{split_id}/items",
        "ListDatasetSplitItems",
        TAG,
        "The items of one part of a split",
        parameters=(DATASET_ID, SPLIT_ID, _query("part", "The part's name, e.g. train."), *PAGINATION),
        success=Success(200, "One page of the part's items, in index order.", DatasetItemPage),
        errors={400: "`part` is missing or names no part.", 404: "No such dataset or split.", 409: "Not ready."},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations",
        "CreateDatasetEvaluation",
        TAG,
        "Evaluate a network, recognition version, spec or endpoint on one part of a split",
        description=(
            "A batch job runs the target over the part (`/v0.7/jobs/{job_id}`, its input the split's part); once the "
            "job ended, its answers are scored against the labels. Classification: accuracy, top-5, per-class "
            "precision/recall/F1 and the confusion matrix, also drawn as a PNG; through a network, score index k of "
            "`output_tensor` is class id k. Detection (through a recognition version): COCO mAP@0.5 and "
            "mAP@0.5:0.95 and per-class AP, the precision-recall curves drawn as a PNG. A version's labels are "
            "matched to the dataset's classes by name; a class no label names is counted as never predicted. The "
            "evaluation's task has kind `evaluation`."
        ),
        parameters=(DATASET_ID, SPLIT_ID),
        body={"application/json": CreateDatasetEvaluation},
        body_example={"network_id": 1, "part": "test"},
        success=Success(201, "The evaluation, `pending`.", EvaluationBody),
        errors={
            400: "Invalid fields, not exactly one target, a part without items, no such target or output, a "
            "detection dataset through a bare network, or a version sharing no label name with the classes.",
            404: "No such dataset or split.",
            409: "The split or the network is not ready.",
            413: None,
            415: None,
        },
    ),
    Operation(
        "GET",
        "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations/{evaluation_id}/metrics",
        "GetDatasetEvaluationMetrics",
        TAG,
        "An evaluation's metrics and plots (SBrain's get_result_metrics)",
        parameters=(DATASET_ID, SPLIT_ID, EVALUATION_ID),
        success=Success(200, "The evaluation: `metrics` once `ready`, `plots` as PNG download URLs.", EvaluationBody),
        errors={404: "No such dataset, split or evaluation."},
    ),
    Operation(
        "POST",
        "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations/{evaluation_id}/cancel",
        "CancelDatasetEvaluation",
        TAG,
        "Cancel a pending evaluation",
        description=CANCEL + " Its batch job is cancelled too; nothing is scored.",
        parameters=(DATASET_ID, SPLIT_ID, EVALUATION_ID),
        success=Success(200, "The evaluation, `cancelled`.", EvaluationBody),
        errors={404: "No such dataset, split or evaluation.", 409: ENDED},
    ),
)
