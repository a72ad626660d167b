"""`stackyard`: the command line of the stackyard api.

Exit codes: 0 done; 1 the api answered with an error (or a wait timed out, or a
confirmation was declined); 2 a usage error; 3 the api could not be reached.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from . import db, emails, events, files, jobs, notify, ratelimit, search, status, users
from .context import EXIT_API_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, Cli, describe
from .output import Output

app = typer.Typer(
    name="stackyard",
    help=(
        "Drive a stackyard Stack through its api: jobs, queues, dead letters, events, email, suppressions, users, "
        "databases, files, notifications, webhooks, search and rate limits; the status of the Stacks and the "
        "config the api applies."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(jobs.app, name="jobs")
app.add_typer(events.app, name="events")
app.add_typer(emails.app, name="emails")
app.add_typer(emails.suppressions, name="suppressions")
app.add_typer(users.app, name="users")
app.add_typer(db.app, name="db")
app.add_typer(files.app, name="files")
app.add_typer(notify.app, name="notify")
app.add_typer(notify.webhooks, name="webhooks")
app.add_typer(search.app, name="search")
app.add_typer(ratelimit.app, name="ratelimit")
app.command("status")(status.status)
app.command("config")(ratelimit.config)


# The defaults are stackyard.client's; it is imported only when a command runs, so that
# --help and shell completion start fast.
@app.callback()
def _global_options(
    ctx: typer.Context,
    api: Annotated[
        str | None,
        typer.Option("--api", envvar="STACKYARD_API_URL", help="The api's URL.", show_default="http://127.0.0.1:8080"),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", envvar="STACKYARD_OUTPUT", help="How to print answers.")
    ] = Output.table,
) -> None:
    ctx.obj = Cli(api, output)


def main() -> None:
    """The console script: the app, with the SDK's exceptions turned into one line on
    stderr and an exit code instead of a traceback."""
    try:
        app(prog_name="stackyard")
    except ValidationError as exc:  # the SDK checks a request against the contract before sending it
        _fail(f"invalid request: {describe(exc)}", EXIT_USAGE)
    except Exception as exc:
        if "stackyard.client" not in sys.modules:  # the SDK raised nothing: it was not even used
            raise
        from stackyard.client import ApiUnreachable, StackyardError, WaitTimeout

        if isinstance(exc, StackyardError):
            detail = f": {exc.detail}" if exc.detail else ""
            _fail(f"{exc.title}{detail} (HTTP {exc.status})", EXIT_API_ERROR)
        if isinstance(exc, ApiUnreachable):
            _fail(f"cannot reach the stackyard api at {exc.url}: {exc.reason}", EXIT_UNREACHABLE)
        if isinstance(exc, WaitTimeout):
            _fail(str(exc), EXIT_API_ERROR)
        raise


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


__all__ = ["app", "main"]
