"""DynamoDB repository for datasets, their versions and splits, in partitions of the networks table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.adapters.dynamodb import _from_item, _put_if_version, _to_item, _unavailable
from tensorgate.dataset_models import Dataset, DatasetEvaluation, DatasetSplit, DatasetVersion
from tensorgate.errors import ConcurrentUpdate, DuplicateName

DATASETS = "#datasets"
SPLITS = "#dataset-splits"
EVALUATIONS = "#dataset-evaluations"


def _versions(account_id: str, dataset_id: int) -> str:
    return f"{account_id}#dataset#{dataset_id}#versions"


def _dataset_guard(account_id: str, name: str) -> str:
    return f"{account_id}#dataset-name#{name}"


def _version_guard(account_id: str, dataset_id: int, name: str) -> str:
    return f"{account_id}#dataset#{dataset_id}#version-name#{name}"


def _split_guard(account_id: str, dataset_id: int, version: str, name: str) -> str:
    return f"{account_id}#dataset#{dataset_id}#split-name#{version}#{name}"


class DynamoDatasetRepository:
    """Datasets in `<account>#datasets` (sort key the dataset id), a dataset's versions in
    `<account>#dataset#<id>#versions` (sort key the version's number), splits in `<account>#dataset-splits`
    (sort key the split id, so a split is one read by id). Every name that must be unique holds a guard item
    (sort key 0) written in the same transaction as its record: two creates with one name cannot both win,
    and a lookup by name is two reads. The records are small and few per account; the items live in S3."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self._table = table
        self._db = dynamodb or client("dynamodb")

    # -- items ----------------------------------------------------------------------------------------------

    def _record(self, partition: str, key: int, record: Any) -> dict[str, Any]:
        return _to_item(
            {
                "account_id": partition,
                "network_id": key,
                "version": record.version,
                "document": record.model_dump_json(),
            }
        )

    def _guard(self, partition: str, points_to: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _to_item({"account_id": partition, "network_id": 0, "points_to": points_to}),
                "ConditionExpression": "attribute_not_exists(network_id)",
            }
        }

    def _new(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(network_id)"}
        }

    def _transact(self, actions: list[dict[str, Any]], taken: DuplicateName, what: str) -> None:
        try:
            self._db.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException":
                reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    raise taken from None
            raise _unavailable(error, what) from None

    def _get(self, partition: str, key: int) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(
                TableName=self._table, Key=_to_item({"account_id": partition, "network_id": key}), ConsistentRead=True
            )
        except ClientError as error:
            raise _unavailable(error, "read a dataset record") from None
        item = response.get("Item")
        return None if item is None else _from_item(item)

    def _query(self, partition: str) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "account_id = :partition",
            "ExpressionAttributeValues": _to_item({":partition": partition}),
            "ConsistentRead": True,
        }
        try:
            while True:
                response = self._db.query(**arguments)
                for item in response.get("Items", []):
                    yield _from_item(item)
                if "LastEvaluatedKey" not in response:
                    return
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as error:
            raise _unavailable(error, "list dataset records") from None

    def _replace(self, partition: str, key: int, record: Any, expected_version: int) -> None:
        item = self._record(partition, key, record)
        if not _put_if_version(self._db, self._table, item, expected_version, "update a dataset record"):
            raise ConcurrentUpdate("The dataset record changed meanwhile; try again.")

    def _delete_keys(self, keys: list[tuple[str, int]]) -> None:
        try:
            for partition, key in keys:
                self._db.delete_item(TableName=self._table, Key=_to_item({"account_id": partition, "network_id": key}))
        except ClientError as error:
            raise _unavailable(error, "delete dataset records") from None

    # -- datasets -------------------------------------------------------------------------------------------

    def put_new(self, dataset: Dataset, first_version: DatasetVersion, taken: DuplicateName) -> None:
        account = dataset.account_id
        self._transact(
            [
                self._guard(_dataset_guard(account, dataset.name), dataset.dataset_id),
                self._new(self._record(account + DATASETS, dataset.dataset_id, dataset)),
                self._guard(_version_guard(account, dataset.dataset_id, first_version.name), first_version.number),
                self._new(self._record(_versions(account, dataset.dataset_id), first_version.number, first_version)),
            ],
            taken,
            "store the dataset",
        )

    def get(self, account_id: str, dataset_id: int) -> Dataset | None:
        item = self._get(account_id + DATASETS, dataset_id)
        return None if item is None else Dataset.model_validate_json(item["document"])

    def get_by_name(self, account_id: str, name: str) -> Dataset | None:
        guard = self._get(_dataset_guard(account_id, name), 0)
        if guard is None:
            return None
        dataset = self.get(account_id, int(guard["points_to"]))
        return dataset if dataset is not None and dataset.name == name else None

    def list_datasets(self, account_id: str) -> list[Dataset]:
        return [Dataset.model_validate_json(item["document"]) for item in self._query(account_id + DATASETS)]

    def replace(self, dataset: Dataset, expected_version: int) -> None:
        self._replace(dataset.account_id + DATASETS, dataset.dataset_id, dataset, expected_version)

    def delete(self, dataset: Dataset) -> None:
        """The dataset's splits and versions (records and name guards), then the dataset and its name."""
        account, dataset_id = dataset.account_id, dataset.dataset_id
        keys: list[tuple[str, int]] = []
        for split in self.list_splits(account, dataset_id):
            keys += [
                (_split_guard(account, dataset_id, split.version_name, split.name), 0),
                (account + SPLITS, split.split_id),
            ]
        for version in self.list_versions(account, dataset_id):
            keys += [
                (_version_guard(account, dataset_id, version.name), 0),
                (_versions(account, dataset_id), version.number),
            ]
        keys += [(account + DATASETS, dataset_id), (_dataset_guard(account, dataset.name), 0)]
        self._delete_keys(keys)

    # -- versions -------------------------------------------------------------------------------------------

    def put_version(self, version: DatasetVersion, taken: DuplicateName) -> None:
        account, dataset_id = version.account_id, version.dataset_id
        self._transact(
            [
                self._guard(_version_guard(account, dataset_id, version.name), version.number),
                self._new(self._record(_versions(account, dataset_id), version.number, version)),
            ],
            taken,
            "store the dataset version",
        )

    def get_version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion | None:
        guard = self._get(_version_guard(account_id, dataset_id, name), 0)
        if guard is None:
            return None
        item = self._get(_versions(account_id, dataset_id), int(guard["points_to"]))
        return None if item is None else DatasetVersion.model_validate_json(item["document"])

    def list_versions(self, account_id: str, dataset_id: int) -> list[DatasetVersion]:
        return [
            DatasetVersion.model_validate_json(item["document"])
            for item in self._query(_versions(account_id, dataset_id))
        ]

    def replace_version(self, version: DatasetVersion, expected_version: int) -> None:
        self._replace(_versions(version.account_id, version.dataset_id), version.number, version, expected_version)

    # -- splits ---------------------------------------------------------------------------------------------

    def put_split(self, split: DatasetSplit, taken: DuplicateName) -> None:
        account = split.account_id
        self._transact(
            [
                self._guard(_split_guard(account, split.dataset_id, split.version_name, split.name), split.split_id),
                self._new(self._record(account + SPLITS, split.split_id, split)),
            ],
            taken,
            "store the split",
        )

    def get_split(self, account_id: str, split_id: int) -> DatasetSplit | None:
        item = self._get(account_id + SPLITS, split_id)
        return None if item is None else DatasetSplit.model_validate_json(item["document"])

    def get_split_by_name(self, account_id: str, dataset_id: int, version: str, name: str) -> DatasetSplit | None:
        guard = self._get(_split_guard(account_id, dataset_id, version, name), 0)
        return None if guard is None else self.get_split(account_id, int(guard["points_to"]))

    def list_splits(self, account_id: str, dataset_id: int) -> list[DatasetSplit]:
        splits = (DatasetSplit.model_validate_json(item["document"]) for item in self._query(account_id + SPLITS))
        return [split for split in splits if split.dataset_id == dataset_id]

    def replace_split(self, split: DatasetSplit, expected_version: int) -> None:
        self._replace(split.account_id + SPLITS, split.split_id, split, expected_version)

    # -- evaluations ----------------------------------------------------------------------------------------

    def put_evaluation(self, evaluation: DatasetEvaluation) -> None:
        key = evaluation.evaluation_id
        self._transact(
            [self._new(self._record(evaluation.account_id + EVALUATIONS, key, evaluation))],
            DuplicateName(f"Evaluation {key} exists already."),
            "store the evaluation",
        )

    def get_evaluation(self, account_id: str, evaluation_id: int) -> DatasetEvaluation | None:
        item = self._get(account_id + EVALUATIONS, evaluation_id)
        return None if item is None else DatasetEvaluation.model_validate_json(item["document"])

    def replace_evaluation(self, evaluation: DatasetEvaluation, expected_version: int) -> None:
        partition = evaluation.account_id + EVALUATIONS
        self._replace(partition, evaluation.evaluation_id, evaluation, expected_version)
