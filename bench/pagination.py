"""List and search pages of networks at 100 and at 10,000 networks in one account: do they cost the same?

One process, the networks table of template.yaml under moto (in process), filled through the repository's
own item format. For each size it measures, in interleaved rounds (medians reported):

  - list page: the first page of 20, and a page deep in the list reached by its cursor (`next` links);
  - search page: `search=` a word in 10 % of the networks' descriptions (a page of 20 matches);
  - before: the first list page as the previous code read it, every item of the account's partition
    deserialised to answer one page and its count (the same query loop, kept here as the baseline);
  - rare search: a word in one network only, which reads every item's small index attributes (no
    index holds words; reported, not a goal).

Besides milliseconds it counts the items each page read (DynamoDB's ScannedCount summed over the page's
queries), which is what a real table charges and what its latency follows; moto's own query walks the
partition it is asked, so its milliseconds grow with the partition even where the items read do not.
Goal (issue 12): a list page and a search page at 10,000 cost at most 2× the same page at 100.

    python bench/pagination.py [--sizes 100,10000] [--rounds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "shared"), str(REPO_ROOT / "layers" / "preprocessing"), str(REPO_ROOT / "local")]
LIMIT = 20


class CountingClient:
    """The DynamoDB client, counting the items its queries read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.scanned = 0

    def query(self, **arguments: Any) -> Any:
        response = self._client.query(**arguments)
        self.scanned += int(response.get("ScannedCount", len(response.get("Items", []))))
        return response

    def batch_get_item(self, **arguments: Any) -> Any:
        response = self._client.batch_get_item(**arguments)
        self.scanned += sum(len(items) for items in response.get("Responses", {}).values())
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def fill(client: Any, account: str, count: int) -> None:
    """`count` networks as the repository writes them, ten percent with 'harbour' in their description,
    one with 'lighthouse', and the account's stored count."""
    from tensorgate.adapters.dynamodb import DynamoNetworkRepository
    from tensorgate.adapters.listing import COUNT_PREFIX
    from tensorgate.models import Network

    repository = DynamoNetworkRepository("NetworksTable", client, counters_table="CountersTable")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    conversion = {"format": "saved_model", "opset": 17, "parity": {"passed": True, "outputs": [{"max_abs": 1e-6}] * 4}}
    items = []
    for network_id in range(1, count + 1):
        description = "boats in the harbour" if network_id % 10 == 0 else "street scenes"
        if network_id == count // 2:
            description += " near the lighthouse"
        network = Network(
            account_id=account,
            network_id=network_id,
            name=f"network {network_id}",
            description=description,
            framework="tensorflow-2.x",
            task_id=network_id,
            upload_prefix=f"uploads/{account}/{network_id}/",
            preprocessing={"inputs": [{"tensor_name": "image", "image": {"target_size": "224x224"}}]},
            outputs=[{"name": "probabilities", "dtype": "float32", "shape": ["N", 1000]}],
            conversion=conversion,
            author="bench",
            create_date=now,
            update_date=now,
        )
        items.append({"PutRequest": {"Item": repository._item(network)}})
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={"NetworksTable": items[start : start + 25]})
    client.put_item(TableName="CountersTable", Item={"name": {"S": COUNT_PREFIX + account}, "items": {"N": str(count)}})


def whole_partition_page(client: Any, account: str) -> int:
    """The previous list: every item of the partition read and deserialised, one page kept, all counted."""
    from tensorgate.adapters.dynamodb import _from_item
    from tensorgate.models import Network

    arguments: dict[str, Any] = {
        "TableName": "NetworksTable",
        "KeyConditionExpression": "account_id = :account",
        "ExpressionAttributeValues": {":account": {"S": account}},
        "ConsistentRead": True,
    }
    count = 0
    page = []
    while True:
        response = client.query(**arguments)
        for item in response.get("Items", []):
            if count < LIMIT:
                page.append(Network.model_validate_json(_from_item(item)["document"]))
            count += 1
        if "LastEvaluatedKey" not in response:
            return count
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def measure(client: CountingClient, action: Callable[[], Any], rounds: int) -> tuple[float, int]:
    times = []
    for _ in range(rounds):
        client.scanned = 0
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, client.scanned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    import boto3
    from moto import mock_aws
    from tensorgate.adapters.dynamodb import DynamoNetworkRepository
    from tensorgate.listing import ListQuery, encode_cursor
    from tensorgate_local.resources import create_all
    from tensorgate_local.template import Template

    results: dict[str, dict[str, Any]] = {}
    with mock_aws():
        session = boto3.session.Session()
        create_all(Template(parameters={"ApiKeyPepper": "bench-pepper-0123456789abcdef0123"}), session)
        client = CountingClient(session.client("dynamodb"))
        repository = DynamoNetworkRepository("NetworksTable", client, counters_table="CountersTable")
        for size in sizes:
            account = f"bench{size}"
            started = time.perf_counter()
            fill(client._client, account, size)
            print(f"filled {size} networks in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        cases: dict[str, Callable[[str, int], Callable[[], Any]]] = {
            "list page (first)": lambda account, size: lambda: repository.page(account, ListQuery(limit=LIMIT)),
            "list page (cursor, middle)": lambda account, size: (
                lambda: repository.page(account, ListQuery(limit=LIMIT, cursor=size // 2))
            ),
            "search page (10 % match)": lambda account, size: (
                lambda: repository.page(account, ListQuery(limit=LIMIT, search="HARBOUR"))
            ),
            "before: list page (whole partition)": lambda account, size: lambda: whole_partition_page(client, account),
            "rare search (1 match)": lambda account, size: (
                lambda: repository.page(account, ListQuery(limit=LIMIT, search="lighthouse"))
            ),
        }
        assert encode_cursor(1)  # the links' cursor encodes the key the middle page starts after
        for case, build in cases.items():
            results[case] = {}
            for size in sizes:
                results[case][str(size)] = measure(client, build(f"bench{size}", size), args.rounds)

    small, large = str(sizes[0]), str(sizes[-1])
    print(f"\n| page | {small} networks | {large} networks | ratio (ms) | items read |")
    print("|---|---|---|---|---|")
    for case, by_size in results.items():
        (ms_small, read_small), (ms_large, read_large) = by_size[small], by_size[large]
        print(
            f"| {case} | {ms_small:.1f} ms | {ms_large:.1f} ms | {ms_large / ms_small:.2f}× | "
            f"{read_small} → {read_large} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
