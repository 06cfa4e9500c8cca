"""The `tensorgate` command: networks, recognition specs and versions, endpoints, jobs, datasets, tasks and
inference from a shell.

Exit status: 0 success, 1 the service answered an error (or a task ended in error), 2 usage
(bad arguments, no configuration, a path that cannot be sent), 3 a wait timed out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import requests

from tensorgate_client import __version__
from tensorgate_client.cli.output import Output
from tensorgate_client.client import Client
from tensorgate_client.errors import (
    ApiError,
    ConfigurationError,
    ConnectionFailed,
    TaskFailed,
    TensorgateError,
    WaitTimeout,
)
from tensorgate_client.uploads import UnusableModelPath

SUCCESS, SERVICE_ERROR, USAGE, TIMEOUT = 0, 1, 2, 3
Command = TypeVar("Command", bound=Callable[..., Any])


class Failed(Exception):
    """Ends the command with `code` after the message is printed (a deploy or a task that ended `error`)."""

    def __init__(self, message: str, code: int = SERVICE_ERROR) -> None:
        super().__init__(message)
        self.code = code


class State:
    """What the group's options set, handed to each command; the client is made on first use."""

    def __init__(self, api_url: str | None, api_key: str | None, profile: str | None) -> None:
        self.api_url, self.api_key, self.profile = api_url, api_key, profile
        self.output = Output()
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.api_url, self.api_key, profile=self.profile)
        return self._client


def display_options(command: Command) -> Command:
    """`--json` and `-q`, after the command's own arguments."""

    def set_json(context: click.Context, _: Any, value: bool) -> None:
        if value:
            context.ensure_object(State).output.as_json = True

    def set_quiet(context: click.Context, _: Any, value: bool) -> None:
        if value:
            context.ensure_object(State).output.quiet = True

    command = click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=set_json, help="Print JSON for scripts."
    )(command)
    return click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=set_quiet, help="No tables, no progress."
    )(command)


def output_options(command: Command) -> Command:
    """`--json` and `-q` on every command, and the connection options too, so that
    `tensorgate networks list --api-url …` works as `tensorgate --api-url … networks list` does."""

    def setting(name: str) -> Callable[[click.Context, Any, str | None], None]:
        def set_value(context: click.Context, _: Any, value: str | None) -> None:
            if value is not None:
                setattr(context.ensure_object(State), name, value)

        return set_value

    for flag, name in (("--profile", "profile"), ("--api-key", "api_key"), ("--api-url", "api_url")):
        command = click.option(flag, expose_value=False, callback=setting(name), help="As before the command.")(command)
    return display_options(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="tensorgate")
@click.option("--api-url", envvar=None, help="API root, e.g. http://127.0.0.1:3000 (else $TENSORGATE_API_URL).")
@click.option("--api-key", envvar=None, help="API key (else $TENSORGATE_API_KEY, else the profile).")
@click.option("--profile", help="Profile of the configuration file (else $TENSORGATE_PROFILE, else default).")
@click.pass_context
def cli(context: click.Context, api_url: str | None, api_key: str | None, profile: str | None) -> None:
    """Tensorgate: register networks, follow their deploys, run inference."""
    state = context.ensure_object(State)
    state.api_url, state.api_key, state.profile = api_url, api_key, profile


def main(arguments: list[str] | None = None) -> None:
    """The console script: runs the command, turns every error into its sentence and exit status."""
    sys.exit(run(arguments))


def run(arguments: list[str] | None = None) -> int:
    output = Output()
    try:
        # Without standalone mode click raises instead of exiting, so every error ends here, as a sentence.
        result = cli.main(args=arguments, prog_name="tensorgate", standalone_mode=False, obj=State(None, None, None))
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:  # usage errors: click's own message and hint
        error.show()
        return USAGE if isinstance(error, click.UsageError) else error.exit_code
    except click.Abort:
        output.err.print("Interrupted.")
        return 130
    except (ConfigurationError, UnusableModelPath) as error:
        _print_error(output, str(error))
        return USAGE
    except WaitTimeout as error:
        _print_error(output, str(error))
        return TIMEOUT
    except (ApiError, ConnectionFailed, TaskFailed) as error:
        _print_error(output, str(error))
        return SERVICE_ERROR
    except Failed as error:
        _print_error(output, str(error))
        return error.code
    except TensorgateError as error:
        _print_error(output, str(error))
        return SERVICE_ERROR
    except requests.RequestException as error:  # a request made outside the transport's sentences
        _print_error(output, f"The request failed: {error}.")
        return SERVICE_ERROR
    except OSError as error:  # a local file or folder that cannot be read or written
        _print_error(output, _local_file_sentence(error))
        return USAGE
    except KeyboardInterrupt:
        output.err.print("Interrupted.")
        return 130
    return result if isinstance(result, int) else SUCCESS


def _local_file_sentence(error: OSError) -> str:
    """`PATH: Permission denied.` rather than `[Errno 13] Permission denied: 'PATH'`."""
    if error.strerror and error.filename:
        return f"{error.filename}: {error.strerror}."
    return str(error)


def _print_error(output: Output, message: str) -> None:
    output.err.print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)


# The subcommands register themselves on `cli`.
from tensorgate_client.cli import account, datasets, infer, networks, recognition, serving, tasks  # noqa: E402, F401
