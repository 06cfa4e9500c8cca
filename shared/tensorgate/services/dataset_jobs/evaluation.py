"""Evaluation: a split's part through a batch job (the part is its input), its answers scored against the labels."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

from tensorgate import dataset_layout, layout
from tensorgate.dataset_models import (
    DatasetEvaluation,
    DatasetKind,
    DatasetSplit,
    DatasetStatus,
)
from tensorgate.errors import TensorgateError
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
    ExtractionRejected,
    FoundBoxes,
    JobBase,
    TruthBoxes,
    evaluation_check_delay,
)
from tensorgate.services.dataset_manifest import iter_chunks

# Metrics and the plots drawn from them (PNG bytes by name).
Scored = tuple[dict[str, Any], dict[str, bytes]]


class EvaluationJobs(JobBase):
    """A split's part through a batch job, then scored; the evaluation and its task end once."""

    def evaluate(self, account_id: str, evaluation_id: int, checks: int = 0) -> str:
        """First a batch job is created over the part's images; then, checked every few seconds, the job's answers
        are scored once it ended."""
        assert self._jobs is not None and self._queue is not None
        evaluation = self._datasets.get_evaluation(account_id, evaluation_id)
        if evaluation is None:
            return "ignored: the evaluation was deleted"
        if evaluation.status is DatasetStatus.CANCELLED and evaluation.job_id is not None:
            self._cancel_job(account_id, evaluation.job_id)  # its cancel may have come before the job's id
            return "cancelled: the evaluation's job was cancelled"
        if evaluation.status is not DatasetStatus.PENDING:
            return f"ignored: the evaluation already ended ({evaluation.status.value})"
        get = lambda: self._datasets.get_evaluation(account_id, evaluation_id)  # noqa: E731
        replace = self._datasets.replace_evaluation
        again = {
            "dataset_job": {
                "kind": "evaluate",
                "account_id": account_id,
                "evaluation_id": evaluation_id,
                "checks": checks + 1,
            }
        }
        if evaluation.job_id is None:
            claimed: DatasetEvaluation = self._claim(evaluation, replace)
            try:
                split = {"dataset_id": claimed.dataset_id, "split_id": claimed.split_id, "part": claimed.part}
                fields: dict[str, Any] = {
                    "name": f"evaluation {evaluation_id}",
                    "description": f"split {claimed.split_id} part {claimed.part} of dataset {claimed.dataset_id}",
                    "inputs": {"split": split},
                    **(claimed.target or {"network_id": claimed.network_id}),
                }
                if claimed.recognition_output is None:
                    fields["output_tensors"] = None if claimed.output_tensor is None else [claimed.output_tensor]
                else:
                    # Every label's score and every box, under its threshold too: metrics read the whole curve.
                    fields["show_discarded"] = True
                job = self._jobs.create(account_id, fields)
            except TensorgateError as refusal:
                return self._fail_evaluation(claimed, f"The batch job could not start: {refusal.message}")
            except BaseException:
                self._update(get, replace, {"claimed_at": None})
                raise
            if self._update(get, replace, {"job_id": int(job["id"]), "claimed_at": None}) is None:
                self._cancel_job(account_id, int(job["id"]))  # cancelled (or deleted) while its job was created
                return "cancelled: the evaluation ended while its job was created"
            self._queue.send_later(again, evaluation_check_delay(checks))
            return f"waiting: job {job['id']} runs {job['total']} items"
        job = self._jobs.get(account_id, evaluation.job_id)
        if job["status"] in ("pending", "running"):
            self._queue.send_later(again, evaluation_check_delay(checks))
            return f"waiting: job {evaluation.job_id} is {job['status']}"
        claimed = self._claim(evaluation, replace)
        try:
            return self._score(claimed, job)
        except BaseException:
            self._update(get, replace, {"claimed_at": None})
            raise

    def _part_prefix(self, evaluation: DatasetEvaluation) -> tuple[DatasetSplit, str]:
        split = self._datasets.get_split(evaluation.account_id, evaluation.split_id)
        if split is None:
            raise ExtractionRejected("The split was deleted.")
        prefix = dataset_layout.split_part_prefix(split.account_id, split.dataset_id, split.split_id, evaluation.part)
        return split, prefix

    def _score(self, evaluation: DatasetEvaluation, job: dict[str, Any]) -> str:
        assert evaluation.job_id is not None
        account_id = evaluation.account_id
        split, part_prefix = self._part_prefix(evaluation)
        version = self._datasets.get_version(account_id, split.dataset_id, split.version_name)
        classes = version.classes if version is not None else {}
        answers = {}
        if job.get("done"):
            results = self._files.get(layout.job_results_key(account_id, evaluation.job_id))
            answers = {line["index"]: line for line in (json.loads(text) for text in results.splitlines() if text)}
        lines = (
            line for _, chunk in iter_chunks(self._files, part_prefix, split.counts[evaluation.part]) for line in chunk
        )
        if evaluation.kind is DatasetKind.DETECTION:
            scored = self._detection(evaluation, lines, answers, classes)
        else:
            scored = self._classification(evaluation, lines, answers, classes)
        if isinstance(scored, str):
            return self._fail_evaluation(evaluation, scored)
        metrics, plots = scored
        metrics |= {"job_id": evaluation.job_id}
        if evaluation.recognition_output is not None:
            metrics["classes_without_label"] = evaluation.classes_without_label
        prefix = dataset_layout.evaluation_prefix(account_id, evaluation.dataset_id, evaluation.evaluation_id)
        self._files.put(f"{prefix}metrics.json", json.dumps(metrics).encode(), "application/json")
        for name, png in plots.items():
            self._files.put(f"{prefix}{name}.png", png, "image/png")
        # The curves hold a point per detection: in metrics.json and drawn, not on the record (DynamoDB's 400 KB).
        stored = {key: value for key, value in metrics.items() if key != "pr_curves_iou_50"}
        get = lambda: self._datasets.get_evaluation(account_id, evaluation.evaluation_id)  # noqa: E731
        changes = {"status": DatasetStatus.READY, "metrics": stored, "plots": sorted(plots), "claimed_at": None}
        if self._update(get, self._datasets.replace_evaluation, changes) is None:
            return "ignored: the evaluation was deleted meanwhile"
        headline = ("items", "accuracy", "top_5", "map_50", "map_50_95", "failed")
        summary = {key: metrics[key] for key in headline if key in metrics}
        self._end_task(
            evaluation.task_id, TaskStatus.SUCCESS, None, summary | {"evaluation_id": evaluation.evaluation_id}
        )
        figure = "accuracy" if evaluation.kind is DatasetKind.CLASSIFICATION else "map_50"
        return f"success: {figure} {metrics.get(figure)}"

    def _classification(
        self,
        evaluation: DatasetEvaluation,
        lines: Iterator[dict[str, Any]],
        answers: dict[int, dict[str, Any]],
        classes: dict[str, int],
    ) -> Scored | str:
        """Score index k is class id k through a network; through a recognition version, each dataset class takes
        the score of the label of its name, and a class no label names is never predicted."""
        assert self._evaluator is not None
        size = max(classes.values(), default=-1) + 1
        names = {identifier: name for name, identifier in classes.items()}
        labels = [names.get(index, f"#{index}") for index in range(size)]
        truth: list[int] = []
        scores: list[list[float]] = []
        failed = 0
        for position, line in enumerate(lines):
            answer = answers.get(position)
            if evaluation.recognition_output is None:
                vector = _scores(answer, evaluation.output_tensor)
            else:
                vector = _labelled_scores(answer, evaluation.recognition_output, classes, size)
            if vector is None or not line["labels"] or line["labels"][0] not in classes:
                failed += 1
                continue
            if len(vector) != size:
                return (
                    f"The network's output {evaluation.output_tensor!r} has {len(vector)} scores, but the dataset "
                    f"has {size} class ids; score index k must be class id k."
                )
            truth.append(classes[line["labels"][0]])
            scores.append(vector)
        if not truth:
            return "No item of the part got an answer from the network; see its job."
        metrics, plots = self._evaluator(truth, scores, labels)
        return metrics | {"failed": failed}, plots

    def _detection(
        self,
        evaluation: DatasetEvaluation,
        lines: Iterator[dict[str, Any]],
        answers: dict[int, dict[str, Any]],
        classes: dict[str, int],
    ) -> Scored | str:
        """Each item's boxes against the recognition version's detections of the same names, in the original
        image's pixels; an item whose inference failed is left out (counted in `failed`)."""
        assert self._detection_evaluator is not None and evaluation.recognition_output is not None
        labels = sorted(classes, key=lambda name: classes[name])
        position = {name: index for index, name in enumerate(labels)}
        truths: list[TruthBoxes] = []
        detections: list[FoundBoxes] = []
        failed = 0
        for index, line in enumerate(lines):
            found = _detections(answers.get(index), evaluation.recognition_output, position)
            if found is None:
                failed += 1
                continue
            truths.append(
                [(position[obj["label"]], obj["box"]) for obj in line.get("objects") or [] if obj["label"] in position]
            )
            detections.append(found)
        if not truths:
            return "No item of the part got an answer from the recognition version; see its job."
        metrics, plots = self._detection_evaluator(truths, detections, labels)
        return metrics | {"items": len(truths), "failed": failed}, plots

    def _cancel_job(self, account_id: str, job_id: int) -> None:
        assert self._jobs is not None
        with contextlib.suppress(TensorgateError):  # ended already, or gone: nothing to stop
            self._jobs.cancel(account_id, job_id)

    def _fail_evaluation(self, evaluation: DatasetEvaluation, message: str) -> str:
        get = lambda: self._datasets.get_evaluation(evaluation.account_id, evaluation.evaluation_id)  # noqa: E731
        changes = {"status": DatasetStatus.ERROR, "error": message, "claimed_at": None}
        if self._update(get, self._datasets.replace_evaluation, changes) is not None:
            self._end_task(evaluation.task_id, TaskStatus.ERROR, message, None)
        return f"error: {message}"


def _scores(answer: dict[str, Any] | None, output: str | None) -> list[float] | None:
    """The class scores of one job result line: the named output tensor's values (its first when unnamed)."""
    if answer is None or answer.get("status") != "success":
        return None
    tensors = (answer.get("data") or {}).get("tensors") or []
    chosen = next((t for t in tensors if output is None or t.get("name") == output), None)
    return None if chosen is None else [float(value) for value in chosen["data"]]


def _predictions(answer: dict[str, Any] | None, output: int) -> list[dict[str, Any]] | None:
    """One job result line's labelled predictions of the spec output `output`, discarded ones too."""
    if answer is None or answer.get("status") != "success":
        return None
    outputs = (answer.get("data") or {}).get("outputs") or []
    if output >= len(outputs):
        return None
    labelled = outputs[output].get("labels") or {}
    return [*(labelled.get("predicted") or []), *(labelled.get("discarded") or [])]


def _labelled_scores(
    answer: dict[str, Any] | None, output: int, classes: dict[str, int], size: int
) -> list[float] | None:
    predictions = _predictions(answer, output)
    if predictions is None:
        return None
    vector = [-math.inf] * size
    for prediction in predictions:
        identifier = classes.get(str(prediction.get("label_name")))
        if identifier is not None:
            vector[identifier] = max(vector[identifier], float(prediction["score"]))
    return vector


def _detections(answer: dict[str, Any] | None, output: int, position: dict[str, int]) -> FoundBoxes | None:
    predictions = _predictions(answer, output)
    if predictions is None:
        return None
    found: FoundBoxes = []
    for prediction in predictions:
        index = position.get(str(prediction.get("label_name")))
        box = (prediction.get("roi") or {}).get("bbox")
        if index is not None and box is not None:
            corners = [float(box[name]) for name in ("xmin", "ymin", "xmax", "ymax")]
            found.append((index, float(prediction["score"]), corners))
    return found
