"""The wire contract of /v1/databases: what the api answers about each Database of the Stack,
shared by the api's router, the Python SDK and the CLI so that they cannot drift.

Nothing here holds a connection string or a password: a Database is shown by its name, the
MongoDB database it uses and what the driver and the server say."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ServerView(_Wire):
    version: str = Field(description="The server's version (buildInfo).", examples=["7.0.14"])
    topology: str = Field(description="Single, ReplicaSetWithPrimary, Sharded, ...", examples=["Single"])
    round_trip_ms: float = Field(ge=0, description="Round trip of a ping just now, in milliseconds.")


class PoolView(_Wire):
    """The connection pool as the driver holds it (per server, per api process)."""

    max_pool_size: int
    min_pool_size: int
    max_idle_time_seconds: float | None = Field(description="Idle connections close after this; null: never.")
    wait_queue_timeout_seconds: float | None = Field(description="Longest wait for a free connection; null: none.")
    max_connecting: int
    connect_timeout_seconds: float | None
    socket_timeout_seconds: float | None = Field(description="null: no socket timeout.")


class MigrationView(_Wire):
    version: int = Field(ge=0, description="The version the database is at (0: none applied).")
    desired_version: int = Field(ge=0, description="spec.migrations.version.")
    failed_version: int | None = Field(default=None, description="The version whose last run failed, if any.")
    error: str | None = Field(default=None, description="Why it failed.")
    failed_at: datetime | None = Field(
        default=None, description="When the failed run ended (a run of the same version again ends later)."
    )
    running_version: int | None = Field(
        default=None, description="A version whose run has started and not ended (or whose runner vanished)."
    )
    last_applied_at: datetime | None = None


class DatabaseView(_Wire):
    model_config = _Wire.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "app",
                    "database": "app",
                    "stack": True,
                    "server": {"version": "7.0.14", "topology": "Single", "roundTripMs": 0.8},
                    "error": None,
                    "pool": {
                        "maxPoolSize": 100,
                        "minPoolSize": 0,
                        "maxIdleTimeSeconds": None,
                        "waitQueueTimeoutSeconds": None,
                        "maxConnecting": 2,
                        "connectTimeoutSeconds": 3.0,
                        "socketTimeoutSeconds": None,
                    },
                    "indexPolicy": "enforce",
                    "migration": {"version": 3, "desiredVersion": 3, "failedVersion": None, "error": None},
                }
            ]
        }
    }

    name: str = Field(description="The Database resource's name.")
    database: str = Field(description="The MongoDB database it uses (spec.connection.database).")
    stack: bool = Field(description="Whether the Stack keeps its own collections there (spec.mongodb.databaseRef).")
    server: ServerView | None = Field(description="The server as reached just now; null when it cannot be.")
    error: str | None = Field(description="Why the server cannot be reached (reason: message), else null.")
    pool: PoolView | None = Field(description="null when the settings or credentials cannot make a client.")
    index_policy: Literal["enforce", "report"]
    migration: MigrationView | None = Field(
        description="Where the migrations stand; null without spec.migrations or when the server is unreachable."
    )


class DatabaseList(_Wire):
    items: list[DatabaseView]


class MigrationRecord(_Wire):
    """One version's run, from the migration history (one record per version; a failed
    version run again replaces its record)."""

    model_config = _Wire.model_config | {"extra": "allow"}

    version: int = Field(validation_alias=AliasChoices("version", "_id"))
    name: str
    kind: str | None = None
    checksum: str | None = None
    status: str = Field(description="applied or failed.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: str | None = None
    runner: str | None = None


class MigrationHistory(_Wire):
    items: list[MigrationRecord] = Field(description="Newest first.")
