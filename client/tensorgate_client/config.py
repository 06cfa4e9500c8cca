"""Where the client finds its API URL and key: arguments over environment over a profile file."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from tensorgate_client.errors import ConfigurationError

URL_VARIABLE = "TENSORGATE_API_URL"
KEY_VARIABLE = "TENSORGATE_API_KEY"
PROFILE_VARIABLE = "TENSORGATE_PROFILE"
CONFIG_FILE_VARIABLE = "TENSORGATE_CONFIG_FILE"
DEFAULT_PROFILE = "default"
API_VERSION_PATH = "/v0.7"


@dataclass(frozen=True)
class Settings:
    """The resolved configuration, with where each value came from (for `whoami`)."""

    api_url: str
    api_key: str
    url_source: str
    key_source: str
    profile: str

    @property
    def masked_key(self) -> str:
        return mask(self.api_key)


def mask(key: str) -> str:
    """Enough of a key to tell keys apart, never enough to use it."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:4]}{'*' * (len(key) - 8)}{key[-4:]}"


def normalize_url(url: str) -> str:
    """The API root ending in /v0.7; a bare host (`http://127.0.0.1:3000`) gets the version appended."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"The API URL {url!r} must start with http:// or https://.")
    if not url.endswith(API_VERSION_PATH):
        url += API_VERSION_PATH
    return url


def config_file() -> Path:
    """`$TENSORGATE_CONFIG_FILE`, else `$XDG_CONFIG_HOME/tensorgate/config`, else `~/.config/tensorgate/config`."""
    explicit = os.environ.get(CONFIG_FILE_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tensorgate" / "config"


def read_profile(profile: str, path: Path | None = None) -> dict[str, str]:
    """The profile's `api_url` and `api_key`; an empty dict when the file or the profile does not exist."""
    path = path or config_file()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        raise ConfigurationError(f"The profile file {path} cannot be read: {error}.") from None
    return dict(parser[profile]) if parser.has_section(profile) else {}


def write_profile(profile: str, api_url: str, api_key: str, path: Path | None = None) -> Path:
    """Write (or replace) one profile, readable by its owner only; other profiles are kept."""
    path = path or config_file()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    parser[profile] = {"api_url": normalize_url(api_url), "api_key": api_key}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)
    return path


def resolve(api_url: str | None = None, api_key: str | None = None, profile: str | None = None) -> Settings:
    """Each value from the first place that has it: the argument, the environment, the profile file."""
    profile = profile or os.environ.get(PROFILE_VARIABLE) or DEFAULT_PROFILE
    stored = read_profile(profile)
    where = f"profile {profile!r} in {config_file()}"
    url, url_source = _first(
        (api_url, "argument"), (os.environ.get(URL_VARIABLE), URL_VARIABLE), (stored.get("api_url"), where)
    )
    key, key_source = _first(
        (api_key, "argument"), (os.environ.get(KEY_VARIABLE), KEY_VARIABLE), (stored.get("api_key"), where)
    )
    if not url:
        raise ConfigurationError(
            f"No API URL: pass --api-url, set {URL_VARIABLE}, or run `tensorgate login` to write a profile."
        )
    if not key:
        raise ConfigurationError(
            f"No API key: pass --api-key, set {KEY_VARIABLE}, or run `tensorgate login` to write a profile."
        )
    return Settings(normalize_url(url), key, url_source, key_source, profile)


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value:
            return value, source
    return None, ""
