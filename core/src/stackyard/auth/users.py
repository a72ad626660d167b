"""Users in MongoDB (collection `users`): one document per user, a unique normalised email.

The document is camelCase; `UserRecord` is its typed view. `public_user` is what the API
shows of a user: never a password hash, a TOTP secret, a recovery code or a passkey key."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, Field
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import Drift, IndexPolicy
from ..db.schema import ensure_capability_indexes
from ..jobs.ids import sortable_id
from .errors import EmailTaken, InvalidEmail

if TYPE_CHECKING:
    from ..notify.events import EventSink

COLLECTION = "users"
PROFILE_FIELDS = ("name", "givenName", "familyName", "picture", "locale")


def identity_key(provider: str, subject: str) -> str:
    """One string per linked identity (`identityKeys`), so a lookup is one equality match."""
    return f"{provider}:{subject}"


def normalise_email(email: str) -> str:
    """NFKC, trimmed, lower case: the form that makes an address unique. Syntax is checked
    (no DNS lookup); special-use domains such as .test are refused by email-validator."""
    text = unicodedata.normalize("NFKC", email).strip()
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"not a valid email address: {exc}") from None
    return valid.normalized.lower()


class Identity(BaseModel):
    provider: str
    subject: str
    email: str | None = None
    email_verified: bool = Field(default=False, alias="emailVerified")
    linked_at: datetime = Field(alias="linkedAt")

    model_config = {"populate_by_name": True}

    def document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class UserRecord(BaseModel):
    id: str
    email: str
    email_verified: bool
    password_hash: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    app_metadata: dict[str, Any] = Field(default_factory=dict)
    disabled: bool = False
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    identities: list[Identity] = Field(default_factory=list)
    mfa_enabled: bool = False
    passkey_count: int = 0
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> UserRecord:
        totp = (doc.get("mfa") or {}).get("totp") or {}
        return cls(
            id=doc["_id"],
            email=doc["email"],
            email_verified=bool(doc.get("emailVerified")),
            password_hash=doc.get("passwordHash"),
            profile=doc.get("profile") or {},
            metadata=doc.get("metadata") or {},
            app_metadata=doc.get("appMetadata") or {},
            disabled=bool(doc.get("disabled")),
            created_at=_aware(doc["createdAt"]),
            updated_at=_aware(doc.get("updatedAt") or doc["createdAt"]),
            last_login_at=_aware(doc["lastLoginAt"]) if doc.get("lastLoginAt") else None,
            identities=[Identity.model_validate(i) for i in doc.get("identities") or []],
            mfa_enabled=bool(totp.get("confirmed")),
            passkey_count=len(doc.get("passkeys") or []),
            raw=doc,
        )

    @property
    def name(self) -> str | None:
        name = self.profile.get("name")
        return name if isinstance(name, str) else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def public_user(user: UserRecord, *, admin: bool = False) -> dict[str, Any]:
    """The user as the API shows it (camelCase); `admin` adds appMetadata and disabled."""
    body: dict[str, Any] = {
        "id": user.id,
        "email": user.email,
        "emailVerified": user.email_verified,
        "profile": user.profile,
        "metadata": user.metadata,
        "hasPassword": user.password_hash is not None,
        "mfaEnabled": user.mfa_enabled,
        "passkeys": user.passkey_count,
        "identities": [{"provider": i.provider, "email": i.email, "linkedAt": i.linked_at} for i in user.identities],
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
        "lastLoginAt": user.last_login_at,
    }
    if admin:
        body["appMetadata"] = user.app_metadata
        body["disabled"] = user.disabled
    return body


_UPDATED_FIELDS = ("email", "emailVerified", "profile", "metadata", "appMetadata", "disabled", "identities")
"""Changes of these (or of fields under them) are user.updated events; sign-in times, password
hashes and second factors are not."""


class UserStore:
    def __init__(self, db: AsyncDatabase[Any], events: EventSink | None = None) -> None:
        self.collection = db[COLLECTION]
        self.events = events
        """Where user.created, user.updated and user.deleted go (platform events)."""

    async def _emit(self, event_type: str, user: UserRecord | dict[str, Any]) -> None:
        """Publish a platform event of this user; a failure is logged, never raised."""
        if self.events is None:
            return
        from ..notify.events import emit

        data = public_user(user, admin=True) if isinstance(user, UserRecord) else user
        stamp = user.updated_at.isoformat() if isinstance(user, UserRecord) else ""
        await emit(self.events, event_type, data, idempotency_key=f"{event_type}:{data['id']}:{stamp}")

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        """The unique email index and the identity index (stackyard.db.schema)."""
        return await ensure_capability_indexes(self.collection.database, [COLLECTION], policy)

    async def create(
        self,
        email: str,
        *,
        password_hash: str | None = None,
        email_verified: bool = False,
        profile: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        identities: list[Identity] | None = None,
        now: datetime | None = None,
    ) -> UserRecord:
        now = now or datetime.now(UTC)
        doc: dict[str, Any] = {
            "_id": "usr_" + sortable_id(int(now.timestamp() * 1000)),
            "email": email.strip(),
            "emailNormalized": normalise_email(email),
            "emailVerified": email_verified,
            "passwordHash": password_hash,
            "profile": {k: v for k, v in (profile or {}).items() if v is not None},
            "metadata": metadata or {},
            "appMetadata": {},
            "disabled": False,
            "createdAt": now,
            "updatedAt": now,
            "lastLoginAt": None,
            "identities": [i.document() for i in identities or []],
            "identityKeys": [identity_key(i.provider, i.subject) for i in identities or []],
            "mfa": {},
            "passkeys": [],
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise EmailTaken("an account with this email address exists") from None
        user = UserRecord.from_document(doc)
        await self._emit("user.created", user)
        return user

    async def by_id(self, user_id: str) -> UserRecord | None:
        doc = await self.collection.find_one({"_id": user_id})
        return UserRecord.from_document(doc) if doc else None

    async def by_email(self, email: str) -> UserRecord | None:
        doc = await self.collection.find_one({"emailNormalized": normalise_email(email)})
        return UserRecord.from_document(doc) if doc else None

    async def by_identity(self, provider: str, subject: str) -> UserRecord | None:
        doc = await self.collection.find_one({"identityKeys": identity_key(provider, subject)})
        return UserRecord.from_document(doc) if doc else None

    async def set_fields(self, user_id: str, fields: dict[str, Any], now: datetime | None = None) -> UserRecord | None:
        """$set on the raw document (camelCase, dotted paths allowed); the updated user or None."""
        update = {**fields, "updatedAt": now or datetime.now(UTC)}
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": user_id}, {"$set": update}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            raise EmailTaken("an account with this email address exists") from None
        if not doc:
            return None
        user = UserRecord.from_document(doc)
        if any(name.split(".")[0] in _UPDATED_FIELDS for name in fields):
            await self._emit("user.updated", user)
        return user

    async def add_identity(self, user_id: str, identity: Identity) -> None:
        await self.collection.update_one(
            {"_id": user_id},
            {
                "$push": {
                    "identities": identity.document(),
                    "identityKeys": identity_key(identity.provider, identity.subject),
                },
                "$set": {"updatedAt": datetime.now(UTC)},
            },
        )

    async def delete(self, user_id: str) -> bool:
        result = await self.collection.delete_one({"_id": user_id})
        if result.deleted_count == 1:
            await self._emit("user.deleted", {"id": user_id})
        return result.deleted_count == 1
