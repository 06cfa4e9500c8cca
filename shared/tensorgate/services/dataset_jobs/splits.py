"""Splits: a version's items drawn into named parts by a seed, stratified by label."""

from __future__ import annotations

import json
import random
from typing import Any

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    DatasetSplit,
    DatasetStatus,
)
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
    DatasetFiles,
    JobBase,
)
from tensorgate.services.dataset_manifest import ManifestWriter, iter_chunks


class SplitJobs(JobBase):
    """A split drawn and its parts written; the split and its task end once."""

    def split(self, account_id: str, split_id: int) -> str:
        split = self._datasets.get_split(account_id, split_id)
        if split is None:
            return "ignored: the split was deleted"
        if split.status is not DatasetStatus.PENDING:
            return f"ignored: the split already ended ({split.status.value})"
        get = lambda: self._datasets.get_split(account_id, split_id)  # noqa: E731
        version = self._datasets.get_version(account_id, split.dataset_id, split.version_name)
        if version is None or version.status is not DatasetStatus.READY:
            self._update(
                get, self._datasets.replace_split, {"status": DatasetStatus.ERROR, "error": "The version is gone."}
            )
            self._end_task(split.task_id, TaskStatus.ERROR, "The version is gone.", None)
            return "error: the version is gone"
        claimed: DatasetSplit = self._claim(split, self._datasets.replace_split)
        prefix = dataset_layout.version_prefix(account_id, split.dataset_id, version.name)
        try:
            assignment, excluded = draw_split(self._files, prefix, version.items, claimed)
            counts = self._write_parts(claimed, prefix, version.items, assignment)
        except BaseException:
            self._update(get, self._datasets.replace_split, {"claimed_at": None})
            raise
        if (
            self._update(
                get,
                self._datasets.replace_split,
                {"status": DatasetStatus.READY, "counts": counts, "excluded": excluded, "claimed_at": None},
            )
            is None
        ):
            return "ignored: the split was deleted meanwhile"
        self._end_task(claimed.task_id, TaskStatus.SUCCESS, None, {"counts": counts, "excluded": excluded})
        return f"success: {counts}"

    def _write_parts(self, split: DatasetSplit, prefix: str, total: int, assignment: list[int]) -> dict[str, int]:
        names = [part["name"] for part in split.parts]
        writers = [
            ManifestWriter(
                self._files, dataset_layout.split_part_prefix(split.account_id, split.dataset_id, split.split_id, name)
            )
            for name in names
        ]
        excluded = set(split.exclude_labels)
        for _, lines in iter_chunks(self._files, prefix, total):
            for line in lines:
                part = assignment[line["index"]]
                if part >= 0:
                    writers[part].add(_without(line, excluded))
        return {name: writer.close() for name, writer in zip(names, writers, strict=True)}


def _without(line: dict[str, Any], excluded: set[str]) -> dict[str, Any]:
    if not excluded:
        return line
    kept = dict(line, labels=[label for label in line["labels"] if label not in excluded])
    if line.get("objects") is not None:
        kept["objects"] = [obj for obj in line["objects"] if obj["label"] not in excluded]
    return kept


def part_sizes(total: int, percentages: list[float]) -> list[int]:
    """Items per part: floors of the exact shares, the remainder to the largest fractions (ties: earlier part)."""
    exact = [total * percentage / 100 for percentage in percentages]
    sizes = [int(share) for share in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


def draw_split(files: DatasetFiles, prefix: str, total: int, split: DatasetSplit) -> tuple[list[int], int]:
    """Each item's part (-1: excluded), drawn from the seed alone: the same seed, version and parts give the same
    items. Stratified: each label (an item's first label left after exclusions) is shuffled and cut on its own."""
    excluded = set(split.exclude_labels)
    groups: dict[str, list[int]] = {}
    assignment = [-1] * total
    left_out = 0
    for _, lines in iter_chunks(files, prefix, total):
        for line in lines:
            labels = [label for label in line["labels"] if label not in excluded]
            if excluded and not labels:
                left_out += 1
                continue
            key = (labels[0] if labels else "") if split.stratify else ""
            groups.setdefault(key, []).append(line["index"])
    percentages = [float(part["percentage"]) for part in split.parts]
    for label in sorted(groups):
        members = groups[label]
        random.Random(json.dumps([split.seed, label])).shuffle(members)
        start = 0
        for part, size in enumerate(part_sizes(len(members), percentages)):
            for index in members[start : start + size]:
                assignment[index] = part
            start += size
    return assignment, left_out
