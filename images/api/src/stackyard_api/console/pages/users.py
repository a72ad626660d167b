"""The console's Users pages:

- `/console/users`: users newest first, searched by email address as GET
  /v1/auth/admin/users searches (a substring, or the start with match=prefix), paginated and
  live;
- `/console/users/{id}`: one user: the profile (never a password hash, a TOTP secret or a
  recovery code: only whether TOTP is on, how many recovery codes are left, the passkeys by
  name and date), the live sessions (device, address, agent, started, last used), the
  organisations with the role, the user's audit events (paginated), live; and the actions:
  disable, enable, revoke every session, delete (the address typed again; back to the list).

The pages make the admin API's core calls (stackyard.auth.admin) with the AuthContext of the
config in force; the console session stands for the admin key, and the audit log records
each change `by: "admin"` with the console user's client, as the admin API does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from stackyard.auth import admin
from stackyard.auth.orgs import LastOwner, Organizations
from starlette.responses import Response

from ...auth_deps import AuthDep, ClientDep
from ..session import ConsoleDep, CsrfDep, flash, redirect, render

router = APIRouter(prefix="/console/users", include_in_schema=False)

PAGE_SIZE = 25
EVENTS_PAGE_SIZE = 25
UserId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^usr_[0-9a-z]+$")]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("")
async def users(
    request: Request,
    session: ConsoleDep,
    context: AuthDep,
    q: Annotated[str | None, Query(max_length=320)] = None,
    match: Annotated[Literal["contains", "prefix"], Query()] = "contains",
    cursor: Cursor = None,
) -> Response:
    query = (q or "").strip() or None
    page = await admin.search_users(context, query=query, match=match, limit=PAGE_SIZE, cursor=cursor)
    return render(request, "console/users/list.html", page=page, q=query or "", match=match, cursor=cursor)


@router.get("/{user_id}")
async def user(
    request: Request, user_id: UserId, session: ConsoleDep, context: AuthDep, cursor: Cursor = None
) -> Response:
    detail = await admin.user_detail(context, user_id)
    events = await admin.audit_events(context, user_id=user_id, limit=EVENTS_PAGE_SIZE, cursor=cursor)
    names = await _organization_names(context, [m["orgId"] for m in detail["organizations"]])
    return render(
        request, "console/users/user.html", user=detail, events=events, cursor=cursor, organization_names=names
    )


@router.post("/{user_id}/disable")
async def disable(request: Request, user_id: UserId, session: CsrfDep, context: AuthDep, client: ClientDep) -> Response:
    updated = await admin.disable_user(context, user_id, client=client)
    flash(request, f"{updated.email} is disabled: every session ended and logging in is refused.")
    return redirect(f"/console/users/{user_id}")


@router.post("/{user_id}/enable")
async def enable(request: Request, user_id: UserId, session: CsrfDep, context: AuthDep, client: ClientDep) -> Response:
    updated = await admin.enable_user(context, user_id, client=client)
    flash(request, f"{updated.email} is enabled again.")
    return redirect(f"/console/users/{user_id}")


@router.post("/{user_id}/sessions/revoke")
async def revoke_sessions(
    request: Request, user_id: UserId, session: CsrfDep, context: AuthDep, client: ClientDep
) -> Response:
    revoked = await admin.revoke_sessions(context, user_id, client=client)
    flash(request, f"{revoked} session{'' if revoked == 1 else 's'} ended.")
    return redirect(f"/console/users/{user_id}")


@router.post("/{user_id}/delete")
async def delete(
    request: Request,
    user_id: UserId,
    session: CsrfDep,
    context: AuthDep,
    client: ClientDep,
    email: Annotated[str, Form(max_length=320)] = "",
    transfer: Annotated[bool, Form()] = False,
) -> Response:
    """The address must be typed again (a slip of the mouse deletes nobody)."""
    detail = await admin.user_detail(context, user_id)
    if email.strip().lower() != str(detail["email"]).lower():
        flash(request, "The address typed did not match the user's: nobody was deleted.", "error")
        return redirect(f"/console/users/{user_id}")
    try:
        done = await admin.delete_user(
            context, user_id, on_sole_owner="transfer" if transfer else "refuse", client=client
        )
    except LastOwner as refused:
        orgs = ", ".join(refused.extensions.get("organizations") or [])
        flash(
            request,
            f"Not deleted: {detail['email']} is the last owner of organisations with other members"
            f"{' (' + orgs + ')' if orgs else ''}. Make another owner first, or delete with ownership passed on.",
            "error",
        )
        return redirect(f"/console/users/{user_id}")
    flash(
        request,
        f"{detail['email']} was deleted with their personal data ({done['sessionsRevoked']} sessions ended, "
        f"{done['eventsErased']} audit events erased).",
    )
    return redirect("/console/users")


async def _organization_names(context: Any, org_ids: list[str]) -> dict[str, str]:
    if not org_ids:
        return {}
    docs = await Organizations(context).orgs.find({"_id": {"$in": org_ids}}, {"name": 1}).to_list()
    return {d["_id"]: d.get("name") or d["_id"] for d in docs}
