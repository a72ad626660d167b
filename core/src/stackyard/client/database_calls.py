"""What each call of /v1/databases sends (as `admin_calls` does for the admin API): every
one carries the Stack's admin API key as its bearer token, and none is sent without one."""

from __future__ import annotations

from datetime import datetime

from stackyard.db.contract import DatabaseList, DatabaseView, MigrationHistory

from .admin_calls import admin
from .calls import Call, _segment

DATABASES = "/v1/databases"


def list_databases(key: str | None) -> Call[DatabaseList]:
    return Call("GET", DATABASES, DatabaseList, headers=admin(key), repeatable=True)


def get_database(key: str | None, name: str) -> Call[DatabaseView]:
    return Call("GET", f"{DATABASES}/{_segment(name)}", DatabaseView, headers=admin(key), repeatable=True)


def migration_history(key: str | None, name: str) -> Call[MigrationHistory]:
    return Call(
        "GET", f"{DATABASES}/{_segment(name)}/migrations", MigrationHistory, headers=admin(key), repeatable=True
    )


Failure = tuple[int, datetime | None]
"""A failed migration run: the version and when its run ended."""


def failure(view: DatabaseView) -> Failure | None:
    """The failed run `view` reports: a run of the same version that fails again is another
    (it ended later); no clock of the caller is compared."""
    migration = view.migration
    if migration is None or migration.failed_version is None:
        return None
    return migration.failed_version, migration.failed_at


def migration_reached(view: DatabaseView, version: int) -> bool:
    return view.migration is not None and view.migration.version >= version
