"""AuthService against an in-memory key table: keys issued once, stored as keyed hashes, checked, revoked."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from tensorgate.errors import NotAuthenticated, ValidationFailed
from tensorgate.models import PUBLIC_ACCOUNT
from tensorgate.services.auth import AuthService

from tests.fakes import InMemoryApiKeyRepository

PEPPER = "unit-test-pepper-0123456789abcdef0123"
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def keys() -> InMemoryApiKeyRepository:
    return InMemoryApiKeyRepository()


@pytest.fixture
def auth(keys: InMemoryApiKeyRepository) -> AuthService:
    return AuthService(keys, PEPPER, clock=lambda: ISSUED)


def test_auth_issued_key_authenticates_its_account(auth: AuthService) -> None:
    record, key = auth.create_key("alice")
    assert key.startswith("tg_") and len(key) > 32
    assert (record.account_id, record.create_date) == ("alice", ISSUED)
    assert auth.authenticate(key) == "alice"


def test_auth_stores_a_keyed_hash_never_the_key(auth: AuthService, keys: InMemoryApiKeyRepository) -> None:
    record, key = auth.create_key("alice")
    expected = hmac.new(PEPPER.encode(), key.encode(), hashlib.sha256).hexdigest()
    assert list(keys.records) == [expected]
    assert record.key_id == expected[:12]
    assert key not in repr(keys.records)


def test_auth_keys_are_unique_per_issue(auth: AuthService) -> None:
    issued = {auth.create_key("alice")[1] for _ in range(20)}
    assert len(issued) == 20


def test_auth_key_checked_with_another_pepper_fails(keys: InMemoryApiKeyRepository, auth: AuthService) -> None:
    _, key = auth.create_key("alice")
    other = AuthService(keys, "another-pepper-0123456789abcdef012345")
    with pytest.raises(NotAuthenticated):
        other.authenticate(key)


@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_auth_missing_key_names_the_header(auth: AuthService, header: str | None) -> None:
    with pytest.raises(NotAuthenticated, match="X-API-KEY"):
        auth.authenticate(header)


@pytest.mark.parametrize(
    "header",
    ["short", "tg_" + "x" * 200, "tg_has spaces_0123456789", "tg_ключ_0123456789abcdef", "tg_unknown_key_0123456789"],
    ids=["too_short", "too_long", "spaces", "non_ascii", "unknown"],
)
def test_auth_malformed_and_unknown_keys_get_the_same_refusal(auth: AuthService, header: str) -> None:
    auth.create_key("alice")
    with pytest.raises(NotAuthenticated) as refused:
        auth.authenticate(header)
    assert refused.value.message == "Invalid API key: check the X-API-KEY header."


def test_auth_chosen_key_for_a_development_stack(auth: AuthService) -> None:
    _, key = auth.create_key("dev", "tg_development_key_0123456789")
    assert key == "tg_development_key_0123456789"
    assert auth.authenticate(key) == "dev"
    with pytest.raises(ValidationFailed):
        auth.create_key("dev", "too-short")


@pytest.mark.parametrize("account", ["", PUBLIC_ACCOUNT, "-leading", "has space", "a/b", "x" * 65])
def test_auth_refuses_unusable_account_names(auth: AuthService, keys: InMemoryApiKeyRepository, account: str) -> None:
    with pytest.raises(ValidationFailed):
        auth.create_key(account)
    assert keys.records == {}


def test_auth_revoked_key_no_longer_authenticates(auth: AuthService) -> None:
    record, key = auth.create_key("alice")
    _, other_key = auth.create_key("alice")
    assert auth.revoke(record.key_id) is True
    with pytest.raises(NotAuthenticated):
        auth.authenticate(key)
    assert auth.authenticate(other_key) == "alice"
    assert auth.revoke(record.key_id) is False


def test_auth_list_keys_shows_ids_and_accounts_only(auth: AuthService) -> None:
    alice, alice_key = auth.create_key("alice")
    bob, bob_key = auth.create_key("bob")
    listed = auth.list_keys()
    assert sorted((item.account_id, item.key_id) for item in listed) == sorted(
        [("alice", alice.key_id), ("bob", bob.key_id)]
    )
    assert alice_key not in repr(listed) and bob_key not in repr(listed)


def test_keys_join_and_leave_the_gateway_usage_plan_when_one_is_configured() -> None:
    from tensorgate.services.auth import AuthService

    from tests.fakes import InMemoryApiKeyRepository, InMemoryGatewayKeys

    gateway = InMemoryGatewayKeys()
    service = AuthService(InMemoryApiKeyRepository(), "pepper-" * 6, gateway_keys=gateway)
    record, key = service.create_key("alice")
    assert gateway.keys == {record.key_id: key}
    assert service.authenticate(key) == "alice"
    assert service.revoke(record.key_id)
    assert gateway.keys == {}
