"""The admin API's bodies under their earlier SDK home; they live in
`stackyard.auth.contract_admin`, shared with the api's router, and are re-exported here so
imports of `stackyard.client.admin_wire` keep working."""

from stackyard.auth.contract_admin import (
    AuditEvent,
    AuditPage,
    Deleted,
    Match,
    MfaState,
    OrgMembership,
    PasskeySummary,
    Revoked,
    UserCreate,
    UserDetail,
    UserPage,
    UserUpdate,
)

__all__ = [
    "AuditEvent",
    "AuditPage",
    "Deleted",
    "Match",
    "MfaState",
    "OrgMembership",
    "PasskeySummary",
    "Revoked",
    "UserCreate",
    "UserDetail",
    "UserPage",
    "UserUpdate",
]
