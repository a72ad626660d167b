"""Declared indexes against the server's: `compare` on listIndexes documents as MongoDB and
FerretDB write them, and `reconcile` against the harness's server (FerretDB 1.x, which
refuses TTL, partial and collation options and does not keep `sparse`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent
from stackyard.db.indexes import Drift, IndexDefinition, compare, definition, index, inspect, reconcile
from stackyard.db.options import client_kwargs
from stackyard.resources.database import DeclaredIndex

ID = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def listed(name: str, *keys: tuple[str, Any], **options: Any) -> dict[str, Any]:
    """A listIndexes document."""
    return {"v": 2, "key": dict(keys), "name": name, **options}


SKU = index("items", ("sku", 1), name="sku_unique", unique=True)


def test_an_index_that_is_not_there_is_missing_and_an_undeclared_one_extra() -> None:
    drift = compare([SKU], {"items": [ID, listed("color_1", ("color", 1))]})
    assert drift.missing == [SKU] and drift.missing_labels == ["items.sku_unique"]
    assert drift.extra == ["items.color_1"]  # never _id_
    assert not drift.in_sync
    assert drift.labels() == {"missing": ["items.sku_unique"], "different": [], "extra": ["items.color_1"]}
    assert compare([SKU], {}).missing == [SKU]  # no collection yet


def test_the_same_index_is_in_sync_whatever_the_servers_number_types() -> None:
    ttl = index("events", ("at", 1), name="at_ttl", expireAfterSeconds=3600)
    existing = {
        "items": [ID, listed("sku_unique", ("sku", 1.0), unique=True, background=True)],
        "events": [ID, listed("at_ttl", ("at", 1), expireAfterSeconds=3600.0)],
    }
    drift = compare([SKU, ttl], existing)
    assert drift.in_sync and drift == Drift()
    assert drift.message() == "every declared index is in place"


@pytest.mark.parametrize(
    ("declared", "server"),
    [
        (SKU, listed("sku_unique", ("sku", 1))),
        (index("items", ("sku", 1), name="sku_1"), listed("sku_1", ("sku", 1), unique=True)),
        (index("e", ("at", 1), name="ttl", expireAfterSeconds=60), listed("ttl", ("at", 1), expireAfterSeconds=120)),
        (index("e", ("at", 1), name="ttl", expireAfterSeconds=60), listed("ttl", ("at", 1))),
        (index("e", ("a", 1), name="s", sparse=True), listed("s", ("a", 1))),
        (
            index("e", ("a", 1), name="p", partialFilterExpression={"a": {"$gt": 5}}),
            listed("p", ("a", 1), partialFilterExpression={"a": {"$gt": 6}}),
        ),
        (
            index("e", ("a", 1), name="c", collation={"locale": "en", "strength": 2}),
            listed("c", ("a", 1), collation={"locale": "en", "strength": 3}),
        ),
        (index("e", ("a", 1), ("b", -1), name="ab"), listed("ab", ("b", -1), ("a", 1))),
        (index("e", ("a", 1), ("b", -1), name="ab"), listed("ab", ("a", 1), ("b", 1))),
    ],
    ids=["unique", "not unique", "ttl value", "ttl gone", "sparse", "partial", "collation", "key order", "direction"],
)
def test_an_index_with_other_options_or_keys_is_different(declared: IndexDefinition, server: dict[str, Any]) -> None:
    drift = compare([declared], {declared.collection: [ID, server]})
    assert drift.different == [declared] and not drift.missing and not drift.extra
    assert not drift.in_sync
    assert drift.message() == f"different: {declared.label}"


def test_collation_and_partial_filters_compare_by_meaning() -> None:
    declared = index(
        "people",
        ("name", 1),
        name="name_ci",
        collation={"locale": "fr_CA", "strength": 2},
        partialFilterExpression={"active": True, "age": {"$gte": 18}},
    )
    as_mongodb_lists_it = listed(
        "name_ci",
        ("name", 1),
        partialFilterExpression={"age": {"$gte": 18}, "active": True},
        collation={
            "locale": "fr_CA",
            "caseLevel": False,
            "caseFirst": "off",
            "strength": 2,
            "numericOrdering": False,
            "alternate": "non-ignorable",
            "maxVariable": "punct",
            "normalization": False,
            "backwards": True,
            "version": "57.1",
        },
    )
    assert compare([declared], {"people": [ID, as_mongodb_lists_it]}).in_sync
    simple = index("people", ("name", 1), name="n", collation={"locale": "simple"})
    assert compare([simple], {"people": [ID, listed("n", ("name", 1))]}).in_sync


def test_a_text_index_compares_by_its_fields() -> None:
    declared = index("posts", ("title", "text"), ("body", "text"))
    assert declared.name == "title_text_body_text"
    server = listed(declared.name, ("_fts", "text"), ("_ftsx", 1), weights={"body": 1, "title": 1})
    assert compare([declared], {"posts": [ID, server]}).in_sync
    other = listed(declared.name, ("_fts", "text"), ("_ftsx", 1), weights={"title": 1})
    assert compare([declared], {"posts": [ID, other]}).different == [declared]


def test_the_same_index_under_another_name_counts_as_the_declared_one() -> None:
    declared = index("emails", ("expiresAt", 1), name="expiresAt_ttl", expireAfterSeconds=0)
    older = listed("expiresAt_1", ("expiresAt", 1), expireAfterSeconds=0)
    drift = compare([declared], {"emails": [ID, older]})
    assert drift.in_sync and drift.extra == []
    # but not one that another declaration names
    plain = index("emails", ("expiresAt", 1), name="expiresAt_1")
    drift = compare([declared, plain], {"emails": [ID, listed("expiresAt_1", ("expiresAt", 1))]})
    assert drift.missing == [declared]


def test_options_the_server_cannot_hold() -> None:
    ttl = index("emails", ("expiresAt", 1), name="expiresAt_ttl", expireAfterSeconds=0)
    sparse = index("emails", ("code", 1), name="code_sparse", sparse=True)
    partial = index("emails", ("open", 1), name="open_only", unique=True, partialFilterExpression={"open": True})
    existing = {"emails": [ID, listed("expiresAt_ttl", ("expiresAt", 1)), listed("code_sparse", ("code", 1))]}
    unsupported = {"expireAfterSeconds", "sparse", "partialFilterExpression"}
    drift = compare([ttl, sparse, partial], existing, unsupported=unsupported)
    # made without TTL and without sparse: in sync, said so; the partial index cannot be made at all
    assert drift.ttl_unsupported == ["emails.expiresAt_ttl"]
    assert drift.unsupported == {
        "emails.expiresAt_ttl": ["expireAfterSeconds"],
        "emails.code_sparse": ["sparse"],
        "emails.open_only": ["partialFilterExpression"],
    }
    assert drift.missing == [partial] and drift.different == []
    assert "without TTL (the server has no TTL indexes): emails.expiresAt_ttl" in drift.message()
    # where the server does hold TTL, the plain index differs
    assert compare([ttl], existing).different == [ttl]


def test_a_declared_index_of_a_database_spec() -> None:
    declared = DeclaredIndex.model_validate(
        {
            "collection": "orders",
            "keys": [{"field": "customer"}, {"field": "createdAt", "order": "desc"}],
            "unique": True,
            "partialFilter": {"state": "open"},
            "collation": {"locale": "en", "strength": 2},
        }
    )
    assert definition(declared) == IndexDefinition(
        "orders",
        "customer_1_createdAt_-1",
        (("customer", 1), ("createdAt", -1)),
        {"unique": True, "partialFilterExpression": {"state": "open"}, "collation": {"locale": "en", "strength": 2}},
    )
    ttl = DeclaredIndex.model_validate(
        {"collection": "sessions", "name": "gone", "keys": [{"field": "at"}], "expireAfter": "720h", "sparse": True}
    )
    assert definition(ttl) == IndexDefinition(
        "sessions", "gone", (("at", 1),), {"sparse": True, "expireAfterSeconds": 2_592_000}
    )
    geo = DeclaredIndex.model_validate({"collection": "geo", "keys": [{"field": "loc", "order": "2dsphere"}]})
    assert definition(geo).keys == (("loc", "2dsphere"),)
    with pytest.raises(ValueError, match="unknown index options"):
        index("x", ("a", 1), hidden=True)


# -- against the server --------------------------------------------------------------------------


class IndexCommands(CommandListener):
    """The createIndexes and dropIndexes commands a client sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name in ("createIndexes", "dropIndexes"):
            self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def commands() -> IndexCommands:
    return IndexCommands()


@pytest.fixture
async def db(mongo_server: Any, commands: IndexCommands) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongo_server.url, event_listeners=[commands], **client_kwargs(None)
    )
    database = client[f"indexes_{uuid.uuid4().hex[:12]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def is_ferretdb(db: Any) -> bool:
    return "ferretdbVersion" in await db.client.admin.command("buildInfo")


ITEMS = [
    index("items", ("sku", 1), name="sku_unique", unique=True),
    index("items", ("color", 1), ("price", -1), name="color_price"),
    index("orders", ("customer", 1), ("_id", -1)),
]


async def names(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {spec["name"]: spec for spec in (await inspect(db, [collection]))[collection]}


async def test_enforce_creates_what_is_missing_and_then_does_nothing(db: Any, commands: IndexCommands) -> None:
    await db["items"].insert_many([{"sku": "a", "color": "red"}, {"sku": "b", "color": "blue"}])
    await db["items"].create_index([("legacy", 1)], name="legacy")

    drift = await reconcile(db, ITEMS, "enforce")
    assert drift.in_sync and drift.errors == {}
    assert drift.extra == ["items.legacy"]  # reported, never dropped
    assert set(await names(db, "items")) == {"_id_", "sku_unique", "color_price", "legacy"}
    assert (await names(db, "items"))["sku_unique"].get("unique") is True
    assert set(await names(db, "orders")) == {"_id_", "customer_1__id_-1"}

    commands.names.clear()
    again = await reconcile(db, ITEMS, "enforce")
    assert again.in_sync and again.extra == ["items.legacy"]
    assert commands.names == []  # an idempotent second run sends no index command


async def test_enforce_puts_back_a_dropped_index_and_rebuilds_a_changed_one(db: Any) -> None:
    await reconcile(db, ITEMS, "enforce")
    await db["items"].drop_index("sku_unique")
    await db["items"].drop_index("color_price")
    await db["items"].create_index([("color", 1), ("price", 1)], name="color_price")  # another direction

    before = await reconcile(db, ITEMS, "report")
    assert before.missing_labels == ["items.sku_unique"] and before.different_labels == ["items.color_price"]

    drift = await reconcile(db, ITEMS, "enforce")
    assert drift.in_sync
    indexes = await names(db, "items")
    assert indexes["color_price"]["key"] == [("color", 1), ("price", -1)]
    assert indexes["sku_unique"].get("unique") is True


async def test_report_changes_nothing(db: Any, commands: IndexCommands) -> None:
    await db["items"].create_index([("sku", 1)], name="sku_unique")  # not unique
    before = await inspect(db, ["items", "orders"])
    commands.names.clear()
    drift = await reconcile(db, ITEMS, "report")
    assert drift.different_labels == ["items.sku_unique"]
    assert drift.missing_labels == ["items.color_price", "orders.customer_1__id_-1"]
    assert await inspect(db, ["items", "orders"]) == before
    assert commands.names == []


async def test_a_rebuild_that_fails_puts_the_old_index_back(db: Any) -> None:
    await db["items"].create_index([("sku", 1)], name="sku_unique")  # not unique
    await db["items"].insert_many([{"sku": "same"}, {"sku": "same"}])
    drift = await reconcile(db, ITEMS[:1], "enforce")
    assert drift.different_labels == ["items.sku_unique"]
    assert "items.sku_unique" in drift.errors and "items.sku_unique" in drift.message()
    restored = (await names(db, "items"))["sku_unique"]
    assert restored["key"] == [("sku", 1)] and not restored.get("unique")


async def test_what_the_server_cannot_hold_is_said_not_churned(db: Any, commands: IndexCommands) -> None:
    declared = [
        index("sessions", ("expiresAt", 1), name="expiresAt_ttl", expireAfterSeconds=60),
        index("sessions", ("code", 1), name="code_sparse", sparse=True),
        index("sessions", ("open", 1), name="open_only", partialFilterExpression={"open": True}),
    ]
    drift = await reconcile(db, declared, "enforce")
    indexes = await names(db, "sessions")
    if await is_ferretdb(db):
        # FerretDB 1.x: no TTL (made without), sparse accepted but not kept, partial refused
        assert drift.ttl_unsupported == ["sessions.expiresAt_ttl"]
        assert drift.unsupported == {
            "sessions.expiresAt_ttl": ["expireAfterSeconds"],
            "sessions.code_sparse": ["sparse"],
            "sessions.open_only": ["partialFilterExpression"],
        }
        assert drift.missing_labels == ["sessions.open_only"] and drift.different == []
        assert "cannot keep partialFilterExpression" in drift.errors["sessions.open_only"]
        assert "expireAfterSeconds" not in indexes["expiresAt_ttl"] and "open_only" not in indexes
    else:
        assert drift.in_sync and drift.ttl_unsupported == [] and drift.unsupported == {}
        assert indexes["expiresAt_ttl"]["expireAfterSeconds"] == 60
    assert set(await db.list_collection_names()) == {"sessions"}  # the probe's collection is gone

    commands.names.clear()
    again = await reconcile(db, declared, "enforce")
    assert again.labels() == drift.labels() and again.ttl_unsupported == drift.ttl_unsupported
    # nothing is dropped and remade on the next run (the partial index is tried again on FerretDB)
    assert "dropIndexes" not in commands.names


async def test_a_key_type_the_server_refuses_stays_missing_with_its_error(db: Any) -> None:
    declared = [index("posts", ("title", "text"))]
    drift = await reconcile(db, declared, "enforce")
    if await is_ferretdb(db):
        assert drift.missing_labels == ["posts.title_text"]
        assert drift.errors["posts.title_text"].startswith("27: ")
    else:
        assert drift.in_sync
