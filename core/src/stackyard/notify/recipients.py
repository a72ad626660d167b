"""Who a run notifies: a user id is resolved from the auth `users` collection (email, name
and locale as the user's record has them, the user's metadata as `data`); an inline
recipient is taken as given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ..auth.users import UserRecord, UserStore
from .contract import Recipient


def normalise(recipients: Sequence[str | Recipient]) -> list[tuple[str, dict[str, Any] | None]]:
    """(id, inline recipient or None) per distinct id, in the order given (the first wins)."""
    seen: dict[str, dict[str, Any] | None] = {}
    for recipient in recipients:
        if isinstance(recipient, str):
            seen.setdefault(recipient, None)
        else:
            seen.setdefault(recipient.id, recipient.model_dump(exclude_none=True))
    return list(seen.items())


def from_user(user: UserRecord) -> dict[str, Any]:
    locale = user.profile.get("locale")
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "locale": locale if isinstance(locale, str) else None,
        "phone": None,
        "data": user.metadata,
    }


def inline(recipient: dict[str, Any]) -> dict[str, Any]:
    return Recipient.model_validate(recipient).model_dump()


async def resolve(
    database: AsyncDatabase[Any], recipient_id: str, given: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The recipient as templates see it, or None for a user id with no user."""
    if given is not None:
        return inline(given)
    user = await UserStore(database).by_id(recipient_id)
    return from_user(user) if user is not None else None


async def resolve_actor(database: AsyncDatabase[Any], actor: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """An actor given by id is looked up like a recipient; one that is no user stays {id}."""
    if actor is None:
        return None
    if isinstance(actor, dict):
        return inline(actor)
    return await resolve(database, actor, None) or inline({"id": actor})


__all__ = ["from_user", "inline", "normalise", "resolve", "resolve_actor"]
