"""Configuration: arguments over environment over the profile file; the file is the owner's alone."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tensorgate_client import ConfigurationError, config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (config.URL_VARIABLE, config.KEY_VARIABLE, config.PROFILE_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config"
    monkeypatch.setenv(config.CONFIG_FILE_VARIABLE, str(path))
    return path


def test_config_profile_alone_gives_url_and_key(isolated: Path) -> None:
    config.write_profile("default", "http://profile.test:3000", "tg_profile_key_123456")

    settings = config.resolve()

    assert settings.api_url == "http://profile.test:3000/v0.7"
    assert settings.api_key == "tg_profile_key_123456" and "profile 'default'" in settings.key_source


def test_config_environment_overrides_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://profile.test", "tg_profile_key_123456")
    monkeypatch.setenv(config.URL_VARIABLE, "http://env.test/v0.7/")
    monkeypatch.setenv(config.KEY_VARIABLE, "tg_env_key_1234567890")

    settings = config.resolve()

    assert (settings.api_url, settings.api_key) == ("http://env.test/v0.7", "tg_env_key_1234567890")
    assert settings.url_source == config.URL_VARIABLE


def test_config_arguments_override_environment_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://profile.test", "tg_profile_key_123456")
    monkeypatch.setenv(config.KEY_VARIABLE, "tg_env_key_1234567890")

    settings = config.resolve(api_url="https://flag.test", api_key="tg_flag_key_1234567890")

    assert (settings.api_url, settings.api_key, settings.key_source) == (
        "https://flag.test/v0.7",
        "tg_flag_key_1234567890",
        "argument",
    )


def test_config_each_value_comes_from_its_own_first_source(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://profile.test", "tg_profile_key_123456")
    monkeypatch.setenv(config.KEY_VARIABLE, "tg_env_key_1234567890")

    settings = config.resolve()

    assert settings.api_url == "http://profile.test/v0.7" and settings.api_key == "tg_env_key_1234567890"


def test_config_named_profile_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_profile("default", "http://default.test", "tg_default_key_12345")
    config.write_profile("staging", "http://staging.test", "tg_staging_key_12345")
    monkeypatch.setenv(config.PROFILE_VARIABLE, "staging")

    assert config.resolve().api_url == "http://staging.test/v0.7"
    assert config.resolve(profile="default").api_url == "http://default.test/v0.7"


def test_config_nothing_configured_says_how_to_configure() -> None:
    with pytest.raises(ConfigurationError, match="TENSORGATE_API_URL.*tensorgate login"):
        config.resolve()


def test_config_profile_file_is_readable_by_its_owner_only(isolated: Path) -> None:
    config.write_profile("default", "http://a.test", "tg_secret_key_1234567")

    assert stat.S_IMODE(isolated.stat().st_mode) == 0o600


def test_config_url_without_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        config.resolve(api_url="127.0.0.1:3000", api_key="k" * 20)


def test_config_masked_key_shows_only_its_ends() -> None:
    assert config.mask("tg_demo_key_0123456789") == "tg_d**************6789"
    assert config.mask("short") == "*****"
