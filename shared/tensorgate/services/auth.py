"""API keys: issued once, stored as keyed hashes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime

from tensorgate.errors import NotAuthenticated, ValidationFailed
from tensorgate.models import PUBLIC_ACCOUNT, ApiKey, utc_now
from tensorgate.ports import ApiKeyRepository, GatewayKeys

KEY_PREFIX = "tg"
_ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{16,128}")
GATEWAY_MIN_KEY_LENGTH = 20  # API Gateway refuses shorter key values


class AuthService:
    def __init__(
        self,
        keys: ApiKeyRepository,
        pepper: str,
        clock: Callable[[], datetime] = utc_now,
        gateway_keys: GatewayKeys | None = None,
    ) -> None:
        self._keys = keys
        self._pepper = pepper.encode()
        self._clock = clock
        self._gateway_keys = gateway_keys

    def key_hash(self, api_key: str) -> str:
        return hmac.new(self._pepper, api_key.encode(), hashlib.sha256).hexdigest()

    def authenticate(self, api_key: str | None) -> str:
        """The account owning `api_key`; the same refusal for a missing, malformed or unknown key."""
        return self.identify(api_key).account_id

    def identify(self, api_key: str | None) -> ApiKey:
        """The record of `api_key` (its account and the name it was issued to), or the refusal of authenticate."""
        if not api_key:
            raise NotAuthenticated("Missing API key: send it in the X-API-KEY header.")
        if not _KEY_PATTERN.fullmatch(api_key):
            raise NotAuthenticated("Invalid API key: check the X-API-KEY header.")
        # The lookup is by keyed hash, so timing reveals nothing about stored keys.
        record = self._keys.get(self.key_hash(api_key))
        if record is None:
            raise NotAuthenticated("Invalid API key: check the X-API-KEY header.")
        return record

    def create_key(self, account_id: str, api_key: str | None = None, name: str | None = None) -> tuple[ApiKey, str]:
        """Issue a key for `account_id` to `name` (a person or a system, the `author` of what the key creates);
        `api_key` lets a development stack use a known key."""
        if name is not None and not 1 <= len(name) <= 200:
            raise ValidationFailed("A key's name must be 1-200 characters.")
        if account_id == PUBLIC_ACCOUNT or not _ACCOUNT_PATTERN.fullmatch(account_id):
            raise ValidationFailed(
                f"Account {account_id!r} must be 1-64 letters, digits, '_' or '-', starting with a letter or digit."
            )
        if api_key is None:
            api_key = f"{KEY_PREFIX}_{secrets.token_urlsafe(32)}"
        elif not _KEY_PATTERN.fullmatch(api_key):
            raise ValidationFailed("A chosen key must be 16-128 letters, digits, '.', '_' or '-'.")
        if self._gateway_keys is not None and len(api_key) < GATEWAY_MIN_KEY_LENGTH:
            raise ValidationFailed(
                f"A key registered with API Gateway must have at least {GATEWAY_MIN_KEY_LENGTH} characters."
            )
        key_hash = self.key_hash(api_key)
        # The key id names a key in listings and revocations without revealing it.
        record = ApiKey(key_id=key_hash[:12], account_id=account_id, create_date=self._clock(), name=name)
        if self._gateway_keys is not None:
            self._gateway_keys.register(record.key_id, api_key)
        self._keys.put(key_hash, record)
        return record, api_key

    def revoke(self, key_id: str) -> bool:
        if self._gateway_keys is not None:
            self._gateway_keys.remove(key_id)
        return self._keys.delete_by_id(key_id)

    def list_keys(self) -> list[ApiKey]:
        return self._keys.list()
