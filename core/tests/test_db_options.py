"""A Database's client settings as the driver holds them, against the harness's MongoDB-wire
server; and the Runtime's clients: the Stack's database, any Database by name, remade when
their settings change, and /readyz without MongoDB."""

from __future__ import annotations

import ssl
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import ReadPreference
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.db.options import (
    DatabaseOptionsError,
    client_kwargs,
    database_client,
    options_fingerprint,
    redact_uri,
    scrub,
)
from stackyard.problems import NotFound
from stackyard.resources.database import DatabaseSpec
from stackyard.runtime import Runtime
from stackyard_harness.certs import CertificateAuthority


def spec(**fields: Any) -> DatabaseSpec:
    return DatabaseSpec.model_validate(
        {"stackRef": {"name": "demo"}, "connection": {"uriSecretRef": {"name": "db", "key": "uri"}}} | fields
    )


TUNED = spec(
    connection={"uriSecretRef": {"name": "db", "key": "uri"}, "database": "shop", "authSource": "admin"},
    pool={"maxPoolSize": 7, "minPoolSize": 2, "maxIdleTime": "5m", "waitQueueTimeout": "1500ms", "maxConnecting": 3},
    client={
        "connectTimeout": "2s",
        "serverSelectionTimeout": "4s",
        "socketTimeout": "30s",
        "timeout": "1m",
        "readPreference": "secondaryPreferred",
        "maxStaleness": "120s",
        "readConcern": "majority",
        "writeConcern": {"w": "majority", "journal": True, "timeout": "5s"},
        "retryableWrites": False,
        "retryableReads": False,
    },
)


def test_without_a_database_the_defaults_are_three_second_timeouts() -> None:
    assert client_kwargs(None) == {"connectTimeoutMS": 3000, "serverSelectionTimeoutMS": 3000}


def test_settings_become_pymongo_options() -> None:
    assert client_kwargs(TUNED) == {
        "maxPoolSize": 7,
        "minPoolSize": 2,
        "maxIdleTimeMS": 300_000,
        "waitQueueTimeoutMS": 1500,
        "maxConnecting": 3,
        "connectTimeoutMS": 2000,
        "serverSelectionTimeoutMS": 4000,
        "socketTimeoutMS": 30_000,
        "timeoutMS": 60_000,
        "readPreference": "secondaryPreferred",
        "maxStalenessSeconds": 120,
        "readConcernLevel": "majority",
        "w": "majority",
        "journal": True,
        "wTimeoutMS": 5000,
        "retryWrites": False,
        "retryReads": False,
        "authSource": "admin",
    }


def test_unset_settings_leave_the_connection_strings_options_alone() -> None:
    kwargs = client_kwargs(spec())
    for option in ("socketTimeoutMS", "timeoutMS", "readConcernLevel", "w", "authSource", "tls", "maxIdleTimeMS"):
        assert option not in kwargs
    assert kwargs["readPreference"] == "primary" and kwargs["retryWrites"] is True
    assert client_kwargs(spec(client={"writeConcern": {"w": "2"}}))["w"] == 2


async def test_the_driver_holds_the_pool_read_and_write_settings(mongo_server: Any, tmp_path: Path) -> None:
    client = database_client(mongo_server.url, "test-db-options", TUNED, {}, "shop", tmp_path)
    try:
        pool, options = client.options.pool_options, client.options
        assert (pool.max_pool_size, pool.min_pool_size, pool.max_connecting) == (7, 2, 3)
        assert (pool.max_idle_time_seconds, pool.wait_queue_timeout) == (300.0, 1.5)
        assert (pool.connect_timeout, pool.socket_timeout, options.server_selection_timeout) == (2.0, 30.0, 4.0)
        assert options.timeout == 60.0
        assert client.read_preference.mode == ReadPreference.SECONDARY_PREFERRED.mode
        assert client.read_preference.max_staleness == 120
        assert client.read_concern.level == "majority"
        assert client.write_concern.document == {"w": "majority", "j": True, "wtimeout": 5000}
        assert (options.retry_writes, options.retry_reads) == (False, False)
        assert pool.metadata["application"] == {"name": "test-db-options"}
        # and it works against the server with those settings
        database = client[f"options_{uuid.uuid4().hex[:8]}"]
        await database["things"].insert_one({"_id": 1})
        assert await database["things"].find_one({"_id": 1}) == {"_id": 1}
        await client.drop_database(database.name)
    finally:
        await client.close()


def test_tls_certificates_from_the_credentials_go_to_private_files(tmp_path: Path) -> None:
    ca = CertificateAuthority("options-test-ca")
    pair = ca.issue("app", "stackyard")
    credentials = {
        credential_key("Database", "shop", "tlsCa"): ca.cert_pem.decode(),
        credential_key("Database", "shop", "tlsCertificate"): (pair.cert_pem + pair.key_pem).decode(),
    }
    tls = spec(connection={"uriSecretRef": {"name": "db", "key": "uri"}, "tls": {"enabled": True}})
    client = database_client("mongodb://127.0.0.1:1/", "t", tls, credentials, "shop", tmp_path / "tls")
    files = sorted((tmp_path / "tls").iterdir())
    assert [f.name.split(".")[1] for f in files] == ["tlsCa", "tlsCertificate"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert files[0].read_bytes() == ca.cert_pem
    context = client.options.pool_options._ssl_context
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "options-test-ca"),),)]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    lenient = spec(connection={"uriSecretRef": {"name": "u", "key": "u"}, "tls": {"allowInvalidHostnames": True}})
    assert client_kwargs(lenient)["tlsAllowInvalidHostnames"] is True
    assert "tls" not in client_kwargs(lenient)  # the connection string may say tls=true
    # the same PEMs again reuse the files; the fingerprint follows the certificates
    database_client("mongodb://127.0.0.1:1/", "t", tls, credentials, "shop", tmp_path / "tls")
    assert sorted((tmp_path / "tls").iterdir()) == files
    rotated = credentials | {credential_key("Database", "shop", "tlsCa"): CertificateAuthority().cert_pem.decode()}
    assert options_fingerprint(tls, rotated, "shop") != options_fingerprint(tls, credentials, "shop")


def test_fingerprint_changes_with_settings_and_connection_string_only() -> None:
    credentials = {credential_key("Database", "shop", "uri"): "mongodb://a/"}
    fingerprint = options_fingerprint(TUNED, credentials, "shop")
    assert fingerprint == options_fingerprint(TUNED.model_copy(deep=True), dict(credentials), "shop")
    assert fingerprint != options_fingerprint(
        TUNED.model_copy(update={"pool": TUNED.pool.model_copy(update={"max_pool_size": 8})}), credentials, "shop"
    )
    assert fingerprint != options_fingerprint(
        TUNED, {credential_key("Database", "shop", "uri"): "mongodb://b/"}, "shop"
    )
    # indexes, migrations and backups are not client settings
    assert fingerprint == options_fingerprint(TUNED.model_copy(update={"index_policy": "report"}), credentials, "shop")
    assert "mongodb://a/" not in fingerprint


def test_errors_and_redacted_uris_never_quote_the_password() -> None:
    uri = "mongodb://app:s3cr%40t@db-0.example:27017,db-1.example/shop?replicaSet=rs0&tlsCertificateKeyFilePassword=pw"
    assert redact_uri(uri) == "mongodb://app:***@db-0.example:27017,db-1.example/shop"
    assert scrub(f"failed: {uri} (pw s3cr%40t)", uri) == "failed: *** (pw ***)"
    with pytest.raises(DatabaseOptionsError) as raised:
        database_client("mongodb://app:s3cr%40t@db-0.example:99999/", "t", None, {}, None)
    assert "s3cr" not in str(raised.value) and "mongodb://app:***@db-0.example:99999/" in str(raised.value)


# -- the Runtime's clients --------------------------------------------------------------------

STACK = {"redis": {"urlSecretRef": {"name": "b", "key": "redis"}}}


def runtime_config(databases: dict[str, DatabaseSpec], *, ref: str | None, generation: int = 1) -> str:
    mongodb = (
        {"databaseRef": {"name": ref}} if ref else {"uriSecretRef": {"name": "b", "key": "m"}, "database": "plain"}
    )
    return RuntimeConfig.model_validate(
        {
            "stack": "demo",
            "namespace": "ns",
            "generation": generation,
            "spec": STACK | {"mongodb": mongodb},
            "databases": {name: d.model_dump(mode="json", by_alias=True) for name, d in databases.items()},
        }
    ).canonical_json()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    live = LiveConfig()
    made = Runtime("test-db-options", FileConfigSource(live, tmp_path), live)
    yield made
    await made.stop()


def shop(pool: int = 7) -> DatabaseSpec:
    return TUNED.model_copy(update={"pool": TUNED.pool.model_copy(update={"max_pool_size": pool})})


async def test_runtime_uses_the_stacks_database_with_its_settings(runtime: Runtime, mongo_server: Any) -> None:
    reports = spec(connection={"uriSecretRef": {"name": "r", "key": "uri"}, "database": "reports"})
    credentials = {
        "stack.redis.url": "redis://127.0.0.1:1/0",
        credential_key("Database", "shop", "uri"): mongo_server.url,
        credential_key("Database", "reports", "uri"): mongo_server.url,
    }
    assert runtime.live.offer(runtime_config({"shop": shop(), "reports": reports}, ref="shop"), credentials, None)
    client = runtime.mongo
    assert client.options.pool_options.max_pool_size == 7
    assert runtime.database.name == "shop" and runtime.database.client is client
    assert runtime.database_client("shop") is client
    other = runtime.database_client("reports")
    assert other is not client and other is runtime.database_client("reports")
    assert other.options.pool_options.max_pool_size == 100
    assert (await other.admin.command("ping"))["ok"] == 1
    with pytest.raises(NotFound):
        runtime.database_client("nope")
    assert runtime.describe_config()["databases"] == ["reports", "shop"]

    # new settings of the Stack's Database: a new client; the other Database's client stays
    assert runtime.live.offer(
        runtime_config({"shop": shop(9), "reports": reports}, ref="shop", generation=2), credentials, None
    )
    assert runtime.mongo is not client and runtime.mongo.options.pool_options.max_pool_size == 9
    assert runtime.database_client("reports") is other
    assert client in runtime._retired

    # a Database gone from the config: its client is retired
    assert runtime.live.offer(runtime_config({"shop": shop(9)}, ref="shop", generation=3), credentials, None)
    assert other in runtime._retired
    with pytest.raises(NotFound):
        runtime.database_client("reports")


async def test_runtime_without_a_database_uses_the_mongodb_uri(runtime: Runtime, mongo_server: Any) -> None:
    credentials = {
        "stack.redis.url": "redis://127.0.0.1:1/0",
        "stack.mongodb.uri": mongo_server.url,
        credential_key("Database", "shop", "uri"): mongo_server.url,
    }
    assert runtime.live.offer(runtime_config({"shop": shop()}, ref=None), credentials, None)
    assert runtime.database.name == "plain"
    assert runtime.mongo.options.pool_options.max_pool_size == 100  # the driver's default
    assert runtime.mongo.options.server_selection_timeout == 3.0
    assert runtime.database_client("shop") is not runtime.mongo


async def test_readiness_says_mongodb_is_unreachable(runtime: Runtime, redis_server: Any, mongo_server: Any) -> None:
    down = {"stack.redis.url": redis_server.url, "stack.mongodb.uri": "mongodb://127.0.0.1:1/"}
    assert runtime.live.offer(runtime_config({}, ref=None), down, None)
    readiness = await runtime.readiness()
    assert not readiness.ready
    assert readiness.checks["redis"] == "ok"
    assert readiness.checks["mongodb"].startswith("unreachable: ")

    up = down | {"stack.mongodb.uri": mongo_server.url}
    assert runtime.live.offer(runtime_config({}, ref=None, generation=2), up, None)
    readiness = await runtime.readiness()
    assert readiness.ready and readiness.checks["mongodb"] == "ok"
