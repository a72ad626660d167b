"""The scopes a user granted a third-party client (MongoDB collection `oidc_consents`, one
document per user and client). A client asking for a scope not yet granted gets the consent
page again; first-party clients never ask."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..context import AuthContext

COLLECTION = "oidc_consents"


def _id(user_id: str, client_id: str) -> str:
    return f"{user_id}:{client_id}"


async def granted_scopes(ctx: AuthContext, user_id: str, client_id: str) -> set[str]:
    found = await ctx.db[COLLECTION].find_one({"_id": _id(user_id, client_id)}, {"scopes": 1})
    return set(found["scopes"]) if found else set()


async def grant(ctx: AuthContext, user_id: str, client_id: str, scopes: list[str]) -> None:
    """Adds the scopes to what the user granted the client."""
    now: datetime = ctx.clock()
    await ctx.db[COLLECTION].update_one(
        {"_id": _id(user_id, client_id)},
        {
            "$addToSet": {"scopes": {"$each": list(scopes)}},
            "$set": {"updatedAt": now},
            "$setOnInsert": {"userId": user_id, "clientId": client_id, "grantedAt": now},
        },
        upsert=True,
    )


async def revoke(ctx: AuthContext, user_id: str, client_id: str) -> bool:
    result = await ctx.db[COLLECTION].delete_one({"_id": _id(user_id, client_id)})
    return bool(result.deleted_count)


async def of_user(ctx: AuthContext, user_id: str) -> list[dict[str, Any]]:
    """Every client the user granted something: clientId, scopes, grantedAt, updatedAt."""
    cursor = ctx.db[COLLECTION].find({"userId": user_id}, {"_id": 0}).sort("clientId", 1)
    return [doc async for doc in cursor]
