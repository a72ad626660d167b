"""The capabilities' collections and indexes, declared once in stackyard.db.schema, and the
capabilities' `ensure_indexes()` keeping them, against the harness's MongoDB-wire server."""

from __future__ import annotations

from typing import Any

import pytest
from stackyard.auth import audit, orgs, users
from stackyard.auth.errors import EmailTaken
from stackyard.config import RuntimeConfig
from stackyard.db import indexes
from stackyard.db.indexes import inspect
from stackyard.db.schema import (
    CAPABILITY_INDEXES,
    EMAIL_TTL_INDEX,
    IndexesNotReady,
    capability_indexes,
    ensure_capability_indexes,
    stack_index_policy,
)
from stackyard.email import log, suppressions
from stackyard.email.log import DeliveryLog
from stackyard.email.suppressions import SuppressionList
from stackyard.notify import deliveries, feed, push_subscriptions, runs
from stackyard.storage import files

ALL = sorted({i.collection for i in CAPABILITY_INDEXES})


async def is_ferretdb(db: Any) -> bool:
    return "ferretdbVersion" in await db.client.admin.command("buildInfo")


def test_the_schema_names_the_capabilities_collections() -> None:
    assert (
        sorted(
            {
                users.COLLECTION,
                audit.COLLECTION,
                orgs.ORGANIZATIONS,
                orgs.MEMBERSHIPS,
                suppressions.COLLECTION,
                log.COLLECTION,
                files.COLLECTION,
                feed.COLLECTION,
                push_subscriptions.COLLECTION,
                deliveries.WEBHOOK_DELIVERIES,
                runs.NOTIFICATION_RUNS,
            }
        )
        == ALL
    )
    labels = [i.label for i in CAPABILITY_INDEXES]
    assert len(labels) == len(set(labels))
    assert {i.label for i in capability_indexes(["users"])} == {"users.email_unique", "users.identity"}
    with pytest.raises(ValueError, match="no capability indexes"):
        capability_indexes(["nope"])


def test_the_index_policy_is_the_stacks_databases() -> None:
    base = {"stack": "s", "namespace": "n", "generation": 1}
    redis = {"urlSecretRef": {"name": "b", "key": "r"}}
    plain = RuntimeConfig.model_validate(
        base | {"spec": {"redis": redis, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}}
    )
    assert stack_index_policy(plain) == "enforce"
    database = {"stackRef": {"name": "s"}, "connection": {"uriSecretRef": {"name": "d", "key": "u"}}}
    reporting = RuntimeConfig.model_validate(
        base
        | {
            "spec": {"redis": redis, "mongodb": {"databaseRef": {"name": "main"}}},
            "databases": {"main": database | {"indexPolicy": "report"}},
        }
    )
    assert stack_index_policy(reporting) == "report"


async def test_every_capability_index_is_made_once(db: Any) -> None:
    drift = await ensure_capability_indexes(db, ALL)
    assert drift.in_sync and drift.extra == [] and drift.errors == {}
    existing = await inspect(db, ALL)
    assert {f"{c}.{s['name']}" for c, specs in existing.items() for s in specs if s["name"] != "_id_"} == {
        i.label for i in CAPABILITY_INDEXES
    }
    assert (await ensure_capability_indexes(db, ALL)).in_sync


async def test_the_capabilities_ensure_their_indexes_from_the_schema(db: Any) -> None:
    store = users.UserStore(db)
    await store.ensure_indexes()
    await store.create("ana@example.com")
    with pytest.raises(EmailTaken):
        await store.create("ANA@example.com")  # the unique email index
    assert (await SuppressionList(db).ensure_indexes()).in_sync
    delivery = DeliveryLog(db)
    await delivery.ensure_indexes()
    ferretdb = await is_ferretdb(db)
    assert delivery.ttl_supported is (not ferretdb)
    ttl = (await inspect(db, ["emails"]))["emails"]
    assert [s.get("expireAfterSeconds") for s in ttl if s["name"] == EMAIL_TTL_INDEX] == [None if ferretdb else 0]


async def test_a_delivery_log_indexed_before_keeps_its_plain_expiry_index(db: Any) -> None:
    """Older versions made `expiresAt_1` where the server has no TTL indexes: it stands for
    the declared one there, and nothing new is made. (FerretDB has no TTL indexes; the
    client is told so up front, so that the case is the same on a server that has them.)"""
    indexes._UNSUPPORTED.setdefault(db.client, {})["expireAfterSeconds"] = False
    await db["emails"].create_index([("expiresAt", 1)], name="expiresAt_1")
    delivery = DeliveryLog(db)
    await delivery.ensure_indexes()
    assert delivery.ttl_supported is False
    expiry = [s["name"] for s in (await inspect(db, ["emails"]))["emails"] if s["key"] == [("expiresAt", 1)]]
    assert expiry == ["expiresAt_1"]


async def test_report_policy_makes_nothing_and_enforce_refuses_what_it_cannot_make(db: Any) -> None:
    drift = await ensure_capability_indexes(db, ["users"], "report")
    assert drift.missing_labels == ["users.email_unique", "users.identity"]
    assert await db.list_collection_names() == []

    await db["users"].insert_many([{"emailNormalized": "a@b"}, {"emailNormalized": "a@b"}])
    with pytest.raises(IndexesNotReady) as raised:
        await ensure_capability_indexes(db, ["users"])
    assert raised.value.status == 503 and "users.email_unique" in raised.value.detail
    # the index that could be made was made
    assert {s["name"] for s in (await inspect(db, ["users"]))["users"]} == {"_id_", "identity"}
