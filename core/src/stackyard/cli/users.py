"""`stackyard users`: the admin API of auth — list and search users, show, create, disable,
enable and delete one, end their sessions, read the audit log. Every command sends the
Stack's admin API key (--admin-key or $STACKYARD_ADMIN_KEY), which is never printed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import EXIT_API_ERROR, EXIT_USAGE, Cli, admin_key_option, cli, fail, interactive
from .jobs import parse_json
from .output import Output, Table, audit_table, emit, user_sessions_table, user_table, users_table

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help and completion start fast
    from stackyard.client import AuditPage, UserPage
    from stackyard.client.admin_wire import Match

app = typer.Typer(
    help="Users (the admin API): list, search, show, create, disable, enable, delete; sessions; the audit log.",
    no_args_is_help=True,
)

UserId = Annotated[str, typer.Argument(metavar="ID", help="The user's id (usr_...).")]
Limit = Annotated[int, typer.Option(help="Items per page.", min=1, max=200)]
Cursor = Annotated[str | None, typer.Option(help="Where the previous page ended (its nextCursor).")]
Every = Annotated[bool, typer.Option("--all", help="Every page, not only the first.")]


admin_key_option(app)


def admin(ctx: typer.Context) -> Cli:
    """The global options with the admin key; without a key, the command fails here (after
    parsing, so that `--help` works without one)."""
    settings = cli(ctx)
    if not settings.admin_key:
        fail("the admin API needs the Stack's admin API key: --admin-key or $STACKYARD_ADMIN_KEY", EXIT_USAGE)
    return settings


def more(output: Output, next_cursor: str | None) -> None:
    if next_cursor and output is Output.table:
        sys.stderr.write(f"more: --cursor {next_cursor}, or --all\n")


@app.command("list")
def list_(
    ctx: typer.Context,
    search: Annotated[str | None, typer.Option("--search", "-s", help="Part of the email address.")] = None,
    prefix: Annotated[bool, typer.Option("--prefix", help="--search matches the start of the address.")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
    every: Every = False,
) -> None:
    """Users, newest first; --search keeps those whose email address contains the text."""
    if prefix and not search:
        raise typer.BadParameter("--prefix goes with --search")
    match: Match = "prefix" if prefix else "contains"
    settings = admin(ctx)
    with settings.client() as client:
        users = client.auth.admin.users
        page: UserPage = users.list(search=search, match=match, limit=limit, cursor=cursor)
        while every and page.next_cursor:
            following = users.list(search=search, match=match, limit=limit, cursor=page.next_cursor)
            page = following.model_copy(update={"items": page.items + following.items})
    emit(settings.output, page, [users_table(page.items)])
    more(settings.output, page.next_cursor)


@app.command()
def show(ctx: typer.Context, user_id: UserId) -> None:
    """A user with their sessions, second factors and organisations."""
    settings = admin(ctx)
    with settings.client() as client:
        user = client.auth.admin.users.get(user_id)
    tables = [user_table(user), user_sessions_table(user.sessions)]
    if user.organizations:
        rows = [[m.org_id, m.role, m.joined_at.isoformat(timespec="seconds")] for m in user.organizations]
        tables.append(Table(["ORGANIZATION", "ROLE", "JOINED"], rows, title="Organizations"))
    emit(settings.output, user, tables)


@app.command()
def create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The new user's email address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from stdin (none: link or provider sign-in).")
    ] = False,
    verified: Annotated[bool, typer.Option("--verified", help="Take the address as confirmed.")] = False,
    name: Annotated[str | None, typer.Option(help="The profile's name.")] = None,
    metadata: Annotated[str | None, typer.Option(help="The user's metadata, as a JSON object.")] = None,
    app_metadata: Annotated[
        str | None, typer.Option("--app-metadata", help="Metadata only admins change, as a JSON object.")
    ] = None,
) -> None:
    """Create a user (no email is sent)."""
    settings = admin(ctx)
    password = read_password() if password_stdin else None
    with settings.client() as client:
        user = client.auth.admin.users.create(
            email,
            password=password,
            email_verified=verified,
            profile={"name": name} if name else None,
            metadata=json_object(metadata, "--metadata"),
            app_metadata=json_object(app_metadata, "--app-metadata"),
        )
    emit(settings.output, user, [user_table(user)])


def read_password() -> str:
    """The first line of stdin, without its line break: `--password-stdin < file` or a pipe.
    On a terminal, asked for without echo."""
    if interactive():
        return str(typer.prompt("Password", hide_input=True, err=True))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise typer.BadParameter("stdin holds no password", param_hint="--password-stdin")
    return password


def json_object(value: str | None, option: str) -> dict[str, Any] | None:
    if value is None:
        return None
    parsed = parse_json(value, option)
    if not isinstance(parsed, dict):
        raise typer.BadParameter("not a JSON object", param_hint=option)
    return parsed


@app.command()
def disable(ctx: typer.Context, user_id: UserId) -> None:
    """Disable a user: every session ends now, and logging in is refused until enabled."""
    settings = admin(ctx)
    with settings.client() as client:
        user = client.auth.admin.users.disable(user_id)
    emit(settings.output, user, [user_table(user)], f"disabled {user.email} ({user.id})")


@app.command()
def enable(ctx: typer.Context, user_id: UserId) -> None:
    """Let a disabled user log in again."""
    settings = admin(ctx)
    with settings.client() as client:
        user = client.auth.admin.users.enable(user_id)
    emit(settings.output, user, [user_table(user)], f"enabled {user.email} ({user.id})")


@app.command()
def delete(
    ctx: typer.Context,
    user_id: UserId,
    transfer: Annotated[
        bool,
        typer.Option(
            "--transfer-sole-owned",
            help="Make the longest-standing admin (else member) owner of organisations the user alone owns.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user with all their personal data (asks first)."""
    settings = admin(ctx)
    with settings.client() as client:
        if not yes:
            if not interactive():
                fail(
                    f"delete would erase user {user_id} and their personal data; nobody can confirm "
                    "(stdin is not a terminal, or CI is set): add --yes",
                    EXIT_USAGE,
                )
            user = client.auth.admin.users.get(user_id)
            if not typer.confirm(f"Delete {user.email} ({user.id}) and all their personal data?", err=True):
                fail("nothing deleted", EXIT_API_ERROR)
        deleted = client.auth.admin.users.delete(user_id, transfer_sole_owned=transfer)
    text = f"deleted {deleted.id}: {deleted.sessions_revoked} sessions ended, {deleted.events_erased} events erased"
    emit(settings.output, deleted, [], text)


@app.command()
def sessions(ctx: typer.Context, user_id: UserId) -> None:
    """A user's live sessions."""
    settings = admin(ctx)
    with settings.client() as client:
        user = client.auth.admin.users.get(user_id)
    body = {"items": [s.model_dump(mode="json", by_alias=True) for s in user.sessions]}
    emit(settings.output, body, [user_sessions_table(user.sessions)])


@app.command("revoke-sessions")
def revoke_sessions(ctx: typer.Context, user_id: UserId) -> None:
    """End every session of a user (refresh tokens stop working at once)."""
    settings = admin(ctx)
    with settings.client() as client:
        count = client.auth.admin.users.revoke_sessions(user_id)
    text = f"ended {count} session{'' if count == 1 else 's'} of {user_id}"
    emit(settings.output, {"sessionsRevoked": count}, [], text)


@app.command()
def events(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's events (their id).")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Only events of this type, e.g. login.failed.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    every: Every = False,
) -> None:
    """The audit log, newest first: logins, failures, password and MFA changes, sessions."""
    settings = admin(ctx)
    with settings.client() as client:
        log = client.auth.admin.events
        page: AuditPage = log.list(user_id=user, type=type, limit=limit, cursor=cursor)
        while every and page.next_cursor:
            following = log.list(user_id=user, type=type, limit=limit, cursor=page.next_cursor)
            page = following.model_copy(update={"items": page.items + following.items})
    emit(settings.output, page, [audit_table(page.items)])
    more(settings.output, page.next_cursor)
