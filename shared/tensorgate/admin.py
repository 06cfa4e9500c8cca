"""`tensorgate-admin`: the operator's command for API keys, public networks and storage backfills.

It talks to the same tables and bucket as the API, through the environment's AWS credentials
(or the local stack's endpoint when AWS_ENDPOINT_URL is set), with names from the environment:
NETWORKS_TABLE, TASKS_TABLE, API_KEYS_TABLE, COUNTERS_TABLE, MODEL_BUCKET, API_KEY_PEPPER.
"""

from __future__ import annotations

import argparse
import json
import sys

from tensorgate import wiring
from tensorgate.errors import TensorgateError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tensorgate-admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="issue an API key for an account (printed once)")
    create.add_argument("account")
    create.add_argument("--name", help="who the key is issued to: the author of what it creates")
    revoke = commands.add_parser("revoke-key", help="revoke a key by its key id (see list-keys)")
    revoke.add_argument("key_id")
    commands.add_parser("list-keys", help="list key ids and their accounts (never the keys)")
    publish = commands.add_parser("publish", help="copy an account's network to the public catalogue")
    publish.add_argument("account")
    publish.add_argument("network_id", type=int)
    publish.add_argument("slug", help="the public id, e.g. imagenet-inception-v1")
    unpublish = commands.add_parser("unpublish", help="remove a public network")
    unpublish.add_argument("slug")
    publish_spec = commands.add_parser(
        "publish-spec", help="copy an account's recognition spec to the public catalogue"
    )
    publish_spec.add_argument("account")
    publish_spec.add_argument("spec_id", type=int)
    publish_spec.add_argument("slug", help="the public id, e.g. imagenet-classes")
    unpublish_spec = commands.add_parser("unpublish-spec", help="remove a public recognition spec")
    unpublish_spec.add_argument("slug")
    backfill = commands.add_parser(
        "backfill-search",
        help="give networks and recognition specs stored before search the attributes lists search on "
        "(idempotent; prints progress per page)",
    )
    backfill.add_argument("--page-size", type=int, default=100, help="items read per page (1-1000)")
    args = parser.parse_args(argv)

    try:
        if args.command == "create-key":
            record, key = wiring.auth_service().create_key(args.account, name=args.name)
            print(json.dumps({"account_id": record.account_id, "key_id": record.key_id, "api_key": key}))
        elif args.command == "revoke-key":
            if not wiring.auth_service().revoke(args.key_id):
                print(f"No key with id {args.key_id}.", file=sys.stderr)
                return 1
            print(f"Revoked key {args.key_id}.")
        elif args.command == "list-keys":
            for item in wiring.auth_service().list_keys():
                print(json.dumps(item.model_dump(mode="json")))
        elif args.command == "publish":
            network = wiring.network_service().publish(args.account, args.network_id, args.slug)
            print(json.dumps(network.to_wire()))
        elif args.command == "unpublish":
            wiring.network_service().unpublish(args.slug)
            print(f"Removed public network {args.slug}.")
        elif args.command == "publish-spec":
            spec = wiring.recognition_service().publish_spec(args.account, args.spec_id, args.slug)
            print(json.dumps(spec.to_wire()))
        elif args.command == "unpublish-spec":
            wiring.recognition_service().unpublish_spec(args.slug)
            print(f"Removed public recognition spec {args.slug}.")
        elif args.command == "backfill-search":
            return backfill_search(args.page_size)
    except TensorgateError as error:
        print(error.message, file=sys.stderr)
        return 2
    return 0


def backfill_search(page_size: int) -> int:
    from tensorgate.adapters.search_backfill import SearchBackfill
    from tensorgate.config import get_settings

    if not 1 <= page_size <= 1000:
        print(f"--page-size takes 1 to 1000 items; got {page_size}.", file=sys.stderr)
        return 2
    settings = get_settings()
    backfill = SearchBackfill(settings.networks_table, settings.counters_table)
    counts = backfill.run(page_size, on_page=lambda so_far: print(json.dumps(so_far.to_wire()), file=sys.stderr))
    print(json.dumps(counts.to_wire()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
