"""What every command shares: the global options, the exit codes, and how to fail."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError

from .output import Output

if TYPE_CHECKING:
    from stackyard.client import Stackyard

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


@dataclass
class Cli:
    """The global options, handed to every command as `ctx.obj`. `admin_key` is set by the
    groups that take it (`admin_key_option`); it is never printed."""

    api: str | None
    output: Output
    admin_key: str | None = field(default=None, repr=False)

    def client(self) -> Stackyard:
        from stackyard.client import Stackyard  # here, so that --help and completion start fast

        try:
            return Stackyard(self.api, admin_key=self.admin_key)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--api") from exc


def cli(ctx: typer.Context) -> Cli:
    obj = ctx.find_object(Cli)
    assert obj is not None, "the global options set ctx.obj"
    return obj


AdminKey = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="STACKYARD_ADMIN_KEY",
        help="The Stack's admin API key (from the Secret of spec.auth.adminApiKeySecretRef).",
        show_default=False,
    ),
]


def admin_key_option(app: typer.Typer) -> None:
    """Give the group `app` the --admin-key option ($STACKYARD_ADMIN_KEY), kept in ctx.obj."""

    @app.callback()
    def _admin_key(ctx: typer.Context, admin_key: AdminKey = None) -> None:
        ctx.obj = replace(cli(ctx), admin_key=admin_key)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, `error: ...`, and the exit code; no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(problems)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal and CI is not set."""
    return sys.stdin is not None and sys.stdin.isatty() and not in_ci()
