"""`tensorgate login` and `tensorgate whoami`: the profile file and what the command is configured with."""

from __future__ import annotations

import os

import click

from tensorgate_client import config
from tensorgate_client.cli import State, cli, display_options, output_options
from tensorgate_client.client import Client


@cli.command()
@click.option("--api-url", "url", help="API root (asked for when not given).")
@click.option("--api-key", "key", help="API key (asked for, hidden, when not given).")
@click.option("--profile", "profile_name", help="Profile to write (default: default).")
@click.option("--no-verify", is_flag=True, help="Write the profile without checking the key against the service.")
@display_options
@click.pass_obj
def login(state: State, url: str | None, key: str | None, profile_name: str | None, no_verify: bool) -> None:
    """Save an API URL and key to the profile file (readable by you only)."""
    profile = profile_name or state.profile or os.environ.get(config.PROFILE_VARIABLE) or config.DEFAULT_PROFILE
    url = url or state.api_url or click.prompt("API URL", default=os.environ.get(config.URL_VARIABLE) or None)
    key = key or state.api_key or click.prompt("API key", hide_input=True)
    assert url is not None and key is not None
    if not no_verify:
        # One authenticated request: a wrong key is a 401 sentence now, not at the next command.
        Client(url, key).networks.list(limit=1)
    path = config.write_profile(profile, url, key)
    settings = config.Settings(config.normalize_url(url), key, str(path), str(path), profile)
    if state.output.as_json:
        state.output.json(
            {"profile": profile, "file": str(path), "api_url": settings.api_url, "api_key": settings.masked_key}
        )
    else:
        state.output.line(f"Saved profile {profile!r} to {path}: {settings.api_url} with key {settings.masked_key}.")


@cli.command()
@output_options
@click.pass_obj
def whoami(state: State) -> None:
    """Show the host and the (masked) key in use, where each came from, and check the key."""
    client = state.client
    settings = client.settings
    count = client.networks.list(limit=1).count
    document = {
        "api_url": settings.api_url,
        "api_key": settings.masked_key,
        "api_url_from": settings.url_source,
        "api_key_from": settings.key_source,
        "profile": settings.profile,
        "networks": count,
    }
    if state.output.as_json:
        state.output.json(document)
        return
    for name, value in document.items():
        state.output.line(f"{name.replace('_', ' '):<14}{value}")
