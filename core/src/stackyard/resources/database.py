"""Database: a MongoDB connection with its client settings, the indexes to keep, versioned
migrations run once under a lock, and scheduled backups.

A Stack uses a Database for its own collections when its `spec.mongodb.databaseRef` names
it; other Databases of the Stack are the application's own (their indexes, migrations and
backups are kept the same way). These models only declare and validate: `stackyard.db`
turns them into driver options, index plans, migration runs and backups.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from .base import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    Pair,
    PairedModel,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    duration_seconds,
    member_ready,
)
from .jobs import CronExpression, TimeZone

DatabaseName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[^/\\. \"$]+$")]
CollectionName = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_][^$\x00]*$")]
FieldPath = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^$\x00][^\x00]*$")]
IndexName = Annotated[str, StringConstraints(min_length=1, max_length=127, pattern=r"^[^\x00$]+$")]

_ANY_JSON: dict[str, JsonValue] = {"x-kubernetes-preserve-unknown-fields": True}


# -- connection and client ----------------------------------------------------------------


class DatabaseTls(CamelModel):
    enabled: bool = Field(default=False, description="Connect with TLS (also on when the URI says tls=true).")
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the PEM CA bundle that signs the server's certificate."
    )
    client_certificate_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a PEM client certificate and its key (X.509 authentication)."
    )
    allow_invalid_hostnames: bool = Field(
        default=False, description="Accept a certificate issued for another host name (never in production)."
    )


class DatabaseConnection(CamelModel):
    uri_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the connection string (mongodb:// or mongodb+srv://, credentials included)."
    )
    database: DatabaseName = Field(default="stackyard", description="Database name.")
    auth_source: DatabaseName | None = Field(
        default=None, description="Database the user is defined in; the URI's authSource when absent."
    )
    tls: DatabaseTls = Field(default_factory=DatabaseTls, description="TLS to the server.")


class PoolSettings(CamelModel):
    max_pool_size: int = Field(
        default=100, ge=1, le=10_000, description="Most connections per server per process (the driver's maxPoolSize)."
    )
    min_pool_size: int = Field(default=0, ge=0, le=10_000, description="Connections kept open per server when idle.")
    max_idle_time: Duration | None = Field(default=None, description="An idle connection is closed after this long.")
    wait_queue_timeout: Duration | None = Field(
        default=None, description="Longest wait for a free connection when the pool is at its maximum."
    )
    max_connecting: int = Field(default=2, ge=1, le=100, description="Connections opened at once per pool.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    # has(): the API server checks the rule against `default: {}` too, before nested defaults.
                    "rule": "!has(self.minPoolSize) || !has(self.maxPoolSize) || self.minPoolSize <= self.maxPoolSize",
                    "message": "minPoolSize must not exceed maxPoolSize",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _min_below_max(self) -> PoolSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("minPoolSize must not exceed maxPoolSize")
        return self


class WriteConcern(CamelModel):
    w: Annotated[str, StringConstraints(pattern=r"^(majority|[0-9]{1,2})$")] = Field(
        default="majority", description="Acknowledgement: majority, or a number of members (0 is unacknowledged)."
    )
    journal: bool | None = Field(default=None, description="Wait for the journal (j).")
    timeout: Duration | None = Field(default=None, description="wtimeout: stop waiting after this.")


class ClientSettings(CamelModel):
    connect_timeout: Duration = Field(default="3s", description="Time to open a connection.")
    server_selection_timeout: Duration = Field(
        default="3s", description="Time to find a suitable server before an operation fails."
    )
    socket_timeout: Duration | None = Field(default=None, description="Time a read or write on a socket may take.")
    timeout: Duration | None = Field(
        default=None, description="Client-side operation timeout (timeoutMS) for every operation."
    )
    read_preference: Literal["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"] = Field(
        default="primary", description="Which members reads go to."
    )
    max_staleness: Duration | None = Field(
        default=None, description="Secondaries further behind than this are not read from (at least 90s)."
    )
    read_concern: Literal["local", "available", "majority", "linearizable", "snapshot"] | None = Field(
        default=None, description="Read concern level; the server default when absent."
    )
    write_concern: WriteConcern | None = Field(default=None, description="Write concern; server default if unset.")
    retryable_writes: bool = Field(default=True, description="Retry a write once after a network error or failover.")
    retryable_reads: bool = Field(default=True, description="Retry a read once after a network error or failover.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxStaleness) || !has(self.readPreference) || self.readPreference != 'primary'",
                    "message": "maxStaleness needs a readPreference other than primary",
                },
                {
                    "rule": "!has(self.maxStaleness) || duration(self.maxStaleness) >= duration('90s')",
                    "message": "maxStaleness must be at least 90s",
                },
                {
                    "rule": "!has(self.writeConcern) || !has(self.writeConcern.journal) || "
                    "!self.writeConcern.journal || !has(self.writeConcern.w) || self.writeConcern.w != '0'",
                    "message": "writeConcern.journal cannot be true with w 0 (unacknowledged)",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _consistent(self) -> ClientSettings:
        if self.max_staleness is not None:
            if self.read_preference == "primary":
                raise ValueError("maxStaleness needs a readPreference other than primary")
            if duration_seconds(self.max_staleness) < 90:
                raise ValueError("maxStaleness must be at least 90s")
        concern = self.write_concern
        if concern is not None and concern.journal and concern.w == "0":
            raise ValueError("writeConcern.journal cannot be true with w 0 (unacknowledged)")
        return self


# -- indexes ---------------------------------------------------------------------------------


class IndexKey(CamelModel):
    field: FieldPath = Field(description="Field path, e.g. email or profile.country.")
    order: Literal["asc", "desc", "text", "hashed", "2dsphere"] = Field(
        default="asc", description="asc (1), desc (-1), or a special index type."
    )


class IndexCollation(CamelModel):
    locale: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z_@=]+$")] = Field(
        description="ICU locale, e.g. en or fr_CA; simple for binary comparison."
    )
    strength: int | None = Field(default=None, ge=1, le=5, description="Comparison level: 2 ignores case.")
    case_level: bool | None = Field(default=None, description="Compare case at strength 1 or 2.")
    numeric_ordering: bool | None = Field(default=None, description="Compare digit strings as numbers.")


class DeclaredIndex(CamelModel):
    collection: CollectionName = Field(description="Collection the index is on.")
    name: IndexName | None = Field(
        default=None, description="Index name; MongoDB's default (field_1_other_-1) when absent."
    )
    keys: list[IndexKey] = Field(min_length=1, max_length=32, description="The keys, in order.")
    unique: bool = Field(default=False, description="Refuse two documents with the same key.")
    sparse: bool = Field(default=False, description="Leave out documents without the indexed field.")
    expire_after: Duration | None = Field(
        default=None,
        description="TTL: documents go this long after the date in the (single) key field, e.g. 720h.",
    )
    partial_filter: dict[str, Any] | None = Field(
        default=None,
        description="partialFilterExpression: only documents matching it are indexed.",
        json_schema_extra=_ANY_JSON,
    )
    collation: IndexCollation | None = Field(default=None, description="String comparison rules of the index.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.expireAfter) || size(self.keys) == 1",
                    "message": "a TTL index (expireAfter) has exactly one key",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _ttl_single_key(self) -> DeclaredIndex:
        if self.expire_after is not None and len(self.keys) != 1:
            raise ValueError("a TTL index (expireAfter) has exactly one key")
        return self


# -- migrations and backups -----------------------------------------------------------------


class ConfigMapRef(CamelModel):
    name: ObjectName = Field(description="Name of the ConfigMap, in the resource's namespace.")


class Migrations(PairedModel):
    pairs = (
        Pair("config_map_ref", "module", "exactly one of migrations.configMapRef and migrations.module must be set"),
    )

    version: int = Field(
        ge=0, le=1_000_000, description="The version the database must reach; raising it runs the migrations up to it."
    )
    config_map_ref: ConfigMapRef | None = Field(
        default=None,
        description=(
            "ConfigMap whose keys are the scripts, named V<version>__<name>.json (database commands) or "
            "V<version>__<name>.py (an async up(db) function)."
        ),
    )
    module: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=200)] | None = Field(
        default=None,
        description="A Python package in the worker image whose modules V<version>__<name> are the scripts.",
    )
    lock_lease: Duration = Field(
        default="60s",
        description="How long the migration lock holds without renewal (a runner that died frees it after this).",
    )


class BackupVolume(CamelModel):
    claim_name: ObjectName = Field(description="PersistentVolumeClaim the backups go to (mounted in the worker).")
    sub_path: Annotated[str, StringConstraints(max_length=200, pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$")] = (
        Field(default="", description="Directory inside the volume.")
    )


class BackupRetention(CamelModel):
    keep_last: int = Field(default=7, ge=1, le=10_000, description="Complete backups kept; older ones are deleted.")
    max_age: Duration | None = Field(
        default=None, description="Backups older than this are deleted (the newest one is always kept)."
    )


class Backup(CamelModel):
    schedule: CronExpression = Field(description="Cron expression (five fields, or @daily...) of the backup runs.")
    time_zone: TimeZone = Field(default="UTC", description="IANA time zone.")
    volume: BackupVolume = Field(description="Where the backups go.")
    retention: BackupRetention = Field(default_factory=BackupRetention, description="Which backups are kept.")
    collections: list[CollectionName] = Field(
        default_factory=list, max_length=500, description="Collections to back up; every collection when empty."
    )
    paused: bool = Field(default=False, description="No scheduled backup runs while paused.")


class DatabaseSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose programs use and keep this database.")
    connection: DatabaseConnection = Field(description="Where the database is and how to reach it.")
    pool: PoolSettings = Field(default_factory=PoolSettings, description="Connection pool of every stackyard program.")
    client: ClientSettings = Field(default_factory=ClientSettings, description="Timeouts, read and write settings.")
    indexes: list[DeclaredIndex] = Field(
        default_factory=list, max_length=500, description="Indexes to keep, besides stackyard's own."
    )
    index_policy: Literal["enforce", "report"] = Field(
        default="enforce",
        description=(
            "enforce: create missing indexes and rebuild those that differ; report: change nothing, "
            "list the drift in status."
        ),
    )
    migrations: Migrations | None = Field(default=None, description="Versioned migrations, run once under a lock.")
    backup: Backup | None = Field(default=None, description="Scheduled backups to a volume, with retention.")

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        refs = {"uri": self.connection.uri_secret_ref}
        tls = self.connection.tls
        if tls.ca_secret_ref is not None:
            refs["tlsCa"] = tls.ca_secret_ref
        if tls.client_certificate_secret_ref is not None:
            refs["tlsCertificate"] = tls.client_certificate_secret_ref
        return refs


# -- status ----------------------------------------------------------------------------------


class ServerInfo(CamelModel):
    version: str = Field(max_length=100, description="The server's version (buildInfo).")
    topology: str = Field(max_length=50, description="Single, ReplicaSetWithPrimary, Sharded, ...")
    round_trip_ms: float = Field(ge=0, description="Measured round trip of a ping, in milliseconds.")
    checked_at: str = Field(description="When it was measured.", json_schema_extra={"format": "date-time"})


class IndexDriftStatus(CamelModel):
    in_sync: bool = Field(description="Every declared index exists as declared.")
    missing: list[str] = Field(default_factory=list, max_length=1000, description="collection.index not on the server.")
    different: list[str] = Field(
        default_factory=list, max_length=1000, description="collection.index on the server with other options or keys."
    )
    extra: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Indexes on declared collections that nobody declared (reported, never dropped).",
    )
    checked_at: str = Field(description="When the indexes were compared.", json_schema_extra={"format": "date-time"})


class MigrationStatus(CamelModel):
    version: int = Field(ge=0, description="The version the database is at.")
    desired_version: int = Field(ge=0, description="spec.migrations.version when last checked.")
    failed_version: int | None = Field(default=None, description="The version that failed, if the last run failed.")
    error: str | None = Field(default=None, max_length=2048, description="Why it failed.")
    last_applied_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class BackupStatus(CamelModel):
    name: str = Field(max_length=200, description="The backup's directory name (its UTC start time).")
    at: str = Field(description="When it finished.", json_schema_extra={"format": "date-time"})
    outcome: Literal["succeeded", "failed"] = Field(description="How it ended.")
    documents: int = Field(default=0, ge=0, description="Documents written.")
    bytes: int = Field(default=0, ge=0, description="Bytes written (compressed).")
    error: str | None = Field(default=None, max_length=2048, description="Why it failed.")


class DatabaseStatus(ResourceStatus):
    """Ready and observedGeneration come from the operator; Connected, IndexesInSync and
    Migrated with the fields below from the worker, which reaches the server."""

    server: ServerInfo | None = Field(default=None, description="The server, as last reached.")
    indexes: IndexDriftStatus | None = Field(default=None, description="Declared indexes against the server's.")
    migration: MigrationStatus | None = Field(default=None, description="Where the migrations stand.")
    last_backup: BackupStatus | None = Field(default=None, description="The latest backup run.")


class Database(CustomResource):
    info = KindInfo(
        kind="Database",
        plural="databases",
        short_names=["sydb"],
        description="A MongoDB connection, pool settings, indexes to keep, versioned migrations and backups.",
        columns=[
            PrinterColumn("Database", ".spec.connection.database"),
            PrinterColumn("Connected", '.status.conditions[?(@.type=="Connected")].status'),
            PrinterColumn("Server", ".status.server.version"),
            PrinterColumn("Version", ".status.migration.version", "integer", "Migration version reached"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(**SECRET_REASONS),
            ConditionInfo(
                "Connected",
                "The worker's probe reached the database (ping and buildInfo); status.server says what answered.",
                {
                    "Connected": "True: the server answered; the message gives its version, topology and round trip.",
                    "AuthenticationFailed": "False: the server refused the credentials.",
                    "TLSError": "False: the TLS handshake failed (certificate, CA, hostname, TLS to a plain port).",
                    "Timeout": "False: nothing answered in time.",
                    "Unreachable": "False: the connection was refused or the name did not resolve.",
                    "Misconfigured": "False: the settings cannot work (a bad URI option, not MongoDB's protocol).",
                },
                set_by="worker",
            ),
            ConditionInfo(
                "IndexesInSync",
                "The declared indexes are in place (status.indexes lists the drift).",
                {
                    "InSync": "True: every declared index is in place.",
                    "Drift": "False: an index is missing or differs (with indexPolicy report nothing is changed), "
                    "or enforcing failed.",
                },
                set_by="worker",
            ),
            ConditionInfo(
                "Migrated",
                "The database is at spec.migrations.version (status.migration); only with spec.migrations.",
                {
                    "AtVersion": "True: the database is at (or past) the version the spec wants.",
                    "Pending": "False: the migration Job has not brought it there yet.",
                    "Failed": "False: a migration failed; the database stays at the version before it.",
                },
                set_by="worker",
            ),
        ],
    )
    kind: Literal["Database"] = "Database"
    spec: DatabaseSpec
    status: DatabaseStatus = Field(default_factory=DatabaseStatus)
