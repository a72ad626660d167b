"""Users' notification preferences: stored per user in MongoDB (`notification_preferences`,
`_id` = the user id), and the one rule that decides whether a channel step reaches a user.

Stored shape (camelCase; workflow keys and categories may hold `.`, which MongoDB field names
may not, so both maps are kept as lists): {_id, channels: {email, inApp, push, webhook},
workflows: [{key, channels}], categories: [{key, channels}], updatedAt}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ..db.schema import NOTIFICATION_PREFERENCES
from ..resources.notify import Channel, NotificationWorkflowSpec
from .contract import ChannelChoices, Preferences, PreferenceSet, PreferencesUpdate


def channel_allowed(
    workflow_spec: NotificationWorkflowSpec,
    workflow_key: str,
    category: str | None,
    prefs: Preferences | None,
    channel: Channel,
) -> bool:
    """Whether a channel step of this workflow reaches a user with these preferences. A
    required workflow ignores preferences. Else the first that says on or off wins: the
    user's entry for the workflow, for its category, for the channel, then the workflow's
    default (spec.preferences.channels); a channel nobody named is on."""
    if workflow_spec.preferences.required:
        return True
    if prefs is not None:
        chosen = [
            prefs.workflows.get(workflow_key),
            prefs.categories.get(category) if category is not None else None,
        ]
        for entry in chosen:
            if entry is not None and (value := entry.channels.get(channel)) is not None:
                return value
        if (value := prefs.channels.get(channel)) is not None:
            return value
    default = workflow_spec.preferences.channels.get(channel)
    return True if default is None else default


def merge(current: Preferences, update: PreferencesUpdate) -> Preferences:
    """`update` merged into `current` (only the fields it sets; null clears a channel)."""
    given = update.model_dump(exclude_unset=True)
    merged = current.model_dump()
    if "channels" in given:
        merged["channels"] |= given["channels"]
    for group in ("workflows", "categories"):
        for key, entry in given.get(group, {}).items():
            held = merged[group].setdefault(key, {"channels": {}})
            held["channels"] |= entry.get("channels", {})
    for group in ("workflows", "categories"):  # an entry with nothing left goes
        merged[group] = {k: v for k, v in merged[group].items() if any(x is not None for x in v["channels"].values())}
    return Preferences.model_validate(merged)


def _channels_doc(channels: ChannelChoices) -> dict[str, Any]:
    return channels.model_dump(by_alias=True, exclude_none=True)


def to_document(user_id: str, prefs: Preferences, now: datetime) -> dict[str, Any]:
    return {
        "_id": user_id,
        "channels": _channels_doc(prefs.channels),
        "workflows": [{"key": k, "channels": _channels_doc(v.channels)} for k, v in sorted(prefs.workflows.items())],
        "categories": [{"key": k, "channels": _channels_doc(v.channels)} for k, v in sorted(prefs.categories.items())],
        "updatedAt": now,
    }


def from_document(doc: dict[str, Any] | None) -> Preferences:
    if doc is None:
        return Preferences()
    return Preferences(
        channels=ChannelChoices.model_validate(doc.get("channels") or {}),
        workflows={
            e["key"]: PreferenceSet(channels=ChannelChoices.model_validate(e.get("channels") or {}))
            for e in doc.get("workflows") or []
        },
        categories={
            e["key"]: PreferenceSet(channels=ChannelChoices.model_validate(e.get("channels") or {}))
            for e in doc.get("categories") or []
        },
    )


class PreferenceStore:
    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self.collection = database[NOTIFICATION_PREFERENCES]

    async def get(self, user_id: str) -> Preferences:
        return from_document(await self.collection.find_one({"_id": user_id}))

    async def update(self, user_id: str, update: PreferencesUpdate) -> Preferences:
        """Read, merge, write: two updates of one user at the same instant keep the later."""
        merged = merge(await self.get(user_id), update)
        doc = to_document(user_id, merged, datetime.now(UTC))
        await self.collection.replace_one({"_id": user_id}, doc, upsert=True)
        return merged


__all__ = ["PreferenceStore", "channel_allowed", "from_document", "merge", "to_document"]
