"""Declared indexes against the server's: compared, and kept in step under a policy.

An index is known by its collection and name. A declared index is *in sync* when the server
has an index of that name with the same keys, in the same order, and the same options among
unique, sparse, expireAfterSeconds, partialFilterExpression and collation (the collation by
locale, strength, caseLevel and numericOrdering, with ICU's defaults filled in; a "simple"
collation is none). An index of another name with the same keys and options counts as the
declared one (MongoDB refuses to create a second), so a renamed declaration does not rebuild
an index. Every other index of a declared collection (but `_id_`) is *extra*: reported, never
dropped.

`reconcile` under "enforce" creates what is missing and drops and recreates what differs
(putting the old index back if the new one cannot be made, e.g. a unique index over
duplicates), one index per command: FerretDB 1.x drops the connection when two commands
creating several indexes each run at once. Under "report" it changes nothing.

Servers that cannot hold an option. Which options a server keeps is found once per client by
creating one index with each on a scratch collection (`_stackyard_index_probe_<random>`,
dropped at once), and only when a declared index uses one and is not already in sync.
FerretDB 1.24 (the test server) refuses expireAfterSeconds, partialFilterExpression and
collation (error 238, NotImplemented), accepts `sparse` but does not keep it (listIndexes
does not show it, and the index is not sparse), and refuses text, hashed and 2dsphere keys
(error 27). So:

- an index whose TTL the server refuses is made without it and listed in `ttl_unsupported`;
  it counts as in sync (documents then go only when something deletes them: the delivery
  log's sweep);
- `sparse` on a server that does not keep it is left out the same way (and listed in
  `unsupported`): the index the server can make is all there is;
- a partialFilterExpression or a collation the server refuses is not dropped: an index
  without it would index or compare differently (a partial unique index over every
  document refuses what the declaration allows), so the index stays missing, with the
  reason in `unsupported` and `errors`;
- a key type the server refuses fails to be created: missing, with the server's error.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from ..resources.base import duration_seconds
from ..resources.database import DeclaredIndex

log = logging.getLogger(__name__)

KeyDirection = int | str
IndexPolicy = Literal["enforce", "report"]
OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation")
"""The index options compared (any other the server lists is ignored)."""
DEGRADABLE = frozenset({"expireAfterSeconds", "sparse"})
"""Options left out where the server cannot hold them (the index is still worth having)."""
NOT_IMPLEMENTED = 238
INDEX_NOT_FOUND = 27
_COLLATION_DEFAULTS = {"strength": 3, "caseLevel": False, "numericOrdering": False}
_PROBES: dict[str, dict[str, Any]] = {
    "expireAfterSeconds": {"expireAfterSeconds": 3600},
    "sparse": {"sparse": True},
    "partialFilterExpression": {"partialFilterExpression": {"probe": {"$exists": True}}},
    "collation": {"collation": {"locale": "en", "strength": 2}},
}
_UNSUPPORTED: weakref.WeakKeyDictionary[AsyncMongoClient[Any], dict[str, bool]] = weakref.WeakKeyDictionary()
"""Per client: option -> whether the server keeps it (as probed)."""


@dataclass(frozen=True)
class IndexDefinition:
    collection: str
    name: str
    keys: tuple[tuple[str, KeyDirection], ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    """Only the options set: unique, sparse (True), expireAfterSeconds (int),
    partialFilterExpression, collation (camelCase fields)."""

    @property
    def label(self) -> str:
        return f"{self.collection}.{self.name}"

    def without(self, options: Collection[str]) -> IndexDefinition:
        return IndexDefinition(
            self.collection, self.name, self.keys, {k: v for k, v in self.options.items() if k not in options}
        )


def default_name(keys: Iterable[tuple[str, KeyDirection]]) -> str:
    """MongoDB's name for an index of these keys: email_1_createdAt_-1."""
    return "_".join(f"{name}_{direction}" for name, direction in keys)


def index(collection: str, *keys: tuple[str, KeyDirection], name: str | None = None, **options: Any) -> IndexDefinition:
    """An IndexDefinition in code: index("users", ("email", 1), name="email_unique", unique=True)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown index options {sorted(unknown)}; known: {OPTIONS}")
    kept = {k: v for k, v in options.items() if v is not None and v is not False}  # expireAfterSeconds may be 0
    return IndexDefinition(collection, name or default_name(keys), tuple(keys), kept)


_DIRECTIONS: dict[str, KeyDirection] = {"asc": 1, "desc": -1}


def definition(declared: DeclaredIndex) -> IndexDefinition:
    """The IndexDefinition of an index of a Database's spec.indexes."""
    options: dict[str, Any] = {"unique": declared.unique, "sparse": declared.sparse}
    if declared.expire_after is not None:
        options["expireAfterSeconds"] = round(duration_seconds(declared.expire_after))
    if declared.partial_filter is not None:
        options["partialFilterExpression"] = declared.partial_filter
    if declared.collation is not None:
        options["collation"] = declared.collation.model_dump(by_alias=True, exclude_none=True)
    keys = tuple((key.field, _DIRECTIONS.get(key.order, key.order)) for key in declared.keys)
    return index(declared.collection, *keys, name=declared.name, **options)


# -- comparing -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """SON and nested documents as plain dicts (key order does not matter in a filter's
    fields), numbers as the same number whatever their BSON type."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _shape(keys: Iterable[tuple[str, Any]], options: Mapping[str, Any]) -> tuple[Any, ...]:
    """What two indexes must share to be the same index: the keys in order (a text index's
    fields as MongoDB keeps them, in its weights) and the compared options, normalized."""
    ordered: list[tuple[str, Any]] = []
    text: set[str] = set()
    for name, direction in keys:
        if direction == "text" or name in ("_fts", "_ftsx"):
            if name not in ("_fts", "_ftsx"):
                text.add(name)
            if ("_fts", "text") not in ordered:
                ordered.append(("_fts", "text"))
            continue
        if isinstance(direction, int | float) and not isinstance(direction, bool):
            direction = 1 if direction > 0 else -1
        ordered.append((name, direction))
    text |= set(options.get("weights", {}))
    normalized: dict[str, Any] = {}
    if options.get("unique"):
        normalized["unique"] = True
    if options.get("sparse"):
        normalized["sparse"] = True
    if options.get("expireAfterSeconds") is not None:
        normalized["expireAfterSeconds"] = int(options["expireAfterSeconds"])
    if options.get("partialFilterExpression") is not None:
        normalized["partialFilterExpression"] = _plain(options["partialFilterExpression"])
    collation = options.get("collation")
    if collation and collation.get("locale") != "simple":
        normalized["collation"] = {"locale": collation["locale"]} | {
            k: collation.get(k, default) for k, default in _COLLATION_DEFAULTS.items()
        }
    return tuple(ordered), tuple(sorted(text)), sorted(normalized.items())


def _declared_shape(index: IndexDefinition) -> tuple[Any, ...]:
    return _shape(index.keys, index.options)


def _existing_shape(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = spec["key"].items() if isinstance(spec["key"], Mapping) else spec["key"]
    return _shape(keys, spec)


@dataclass(frozen=True)
class Drift:
    missing: list[IndexDefinition] = field(default_factory=list)
    different: list[IndexDefinition] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """collection.name of undeclared indexes on declared collections (never dropped)."""
    ttl_unsupported: list[str] = field(default_factory=list)
    """Declared TTL indexes kept without TTL: the server has no TTL indexes."""
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    """collection.name -> the declared options the server cannot hold."""
    errors: dict[str, str] = field(default_factory=dict)
    """collection.name -> why creating or rebuilding it failed (enforce)."""

    @property
    def in_sync(self) -> bool:
        return not self.missing and not self.different

    @property
    def missing_labels(self) -> list[str]:
        return [i.label for i in self.missing]

    @property
    def different_labels(self) -> list[str]:
        return [i.label for i in self.different]

    def labels(self) -> dict[str, list[str]]:
        """{"missing": [...], "different": [...], "extra": [...]} as status shows them."""
        return {"missing": self.missing_labels, "different": self.different_labels, "extra": list(self.extra)}

    def message(self) -> str:
        """One line for a condition: what is out of step, and why where known."""
        parts = [
            f"{what}: {', '.join(labels)}"
            for what, labels in (
                ("missing", self.missing_labels),
                ("different", self.different_labels),
                ("extra (not dropped)", self.extra),
                ("without TTL (the server has no TTL indexes)", self.ttl_unsupported),
            )
            if labels
        ]
        parts += [f"{label}: {error}" for label, error in sorted(self.errors.items())]
        return "; ".join(parts) or "every declared index is in place"


def compare(
    declared: Sequence[IndexDefinition],
    existing: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    unsupported: Collection[str] = (),
) -> Drift:
    """Declared indexes against the server's (`existing`: listIndexes documents by
    collection). `unsupported`: options the server cannot hold (see the module's doc)."""
    drift = Drift()
    matched: set[tuple[str, str]] = set()
    declared_names = {(i.collection, i.name) for i in declared}
    for wanted in declared:
        left_out = [o for o in wanted.options if o in unsupported]
        if left_out:
            drift.unsupported[wanted.label] = left_out
        if any(o not in DEGRADABLE for o in left_out):
            drift.missing.append(wanted)
            continue
        if "expireAfterSeconds" in left_out:
            drift.ttl_unsupported.append(wanted.label)
        shape = _declared_shape(wanted.without(left_out))
        specs = existing.get(wanted.collection, ())
        named = next((s for s in specs if s.get("name") == wanted.name), None)
        if named is not None:
            matched.add((wanted.collection, wanted.name))
            if _existing_shape(named) != shape:
                drift.different.append(wanted)
            continue
        alias = next(
            (
                s
                for s in specs
                if (wanted.collection, s.get("name")) not in declared_names | matched and _existing_shape(s) == shape
            ),
            None,
        )
        if alias is None:
            drift.missing.append(wanted)
        else:
            matched.add((wanted.collection, str(alias["name"])))
    for collection in sorted({i.collection for i in declared}):
        for spec in existing.get(collection, ()):
            name = str(spec.get("name"))
            if name != "_id_" and (collection, name) not in matched | declared_names:
                drift.extra.append(f"{collection}.{name}")
    return drift


# -- the server --------------------------------------------------------------------------------


async def inspect(db: AsyncDatabase[Any], collections: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """listIndexes of each collection ([] for one that does not exist), keys as ordered pairs."""
    found: dict[str, list[dict[str, Any]]] = {}
    for collection in dict.fromkeys(collections):
        cursor = await db[collection].list_indexes()
        found[collection] = [{**spec, "key": list(spec["key"].items())} async for spec in cursor]
    return found


async def unsupported_options(db: AsyncDatabase[Any], options: Iterable[str]) -> frozenset[str]:
    """The options among `options` that the server of `db` refuses or does not keep, found
    once per client on a scratch collection (a server that will not let this user create
    one is taken to keep them all, and asked again next time)."""
    options = list(dict.fromkeys(options))
    known = _UNSUPPORTED.setdefault(db.client, {})
    wanted = [o for o in options if o in _PROBES and o not in known]
    if wanted:
        scratch = db[f"_stackyard_index_probe_{uuid.uuid4().hex[:8]}"]
        try:
            found: dict[str, bool] = {}
            for option in wanted:
                try:
                    await scratch.create_index([(option, 1)], name=option, **_PROBES[option])
                except OperationFailure as exc:
                    if exc.code != NOT_IMPLEMENTED:
                        log.warning("cannot tell whether the server keeps %s: %s", option, exc.code)
                        continue
                    found[option] = False
            listed = {spec["name"]: spec for spec in (await inspect(db, [scratch.name]))[scratch.name]}
            for option in wanted:
                if option not in found and option in listed:
                    found[option] = option in listed[option]
            known.update(found)
        finally:
            with contextlib.suppress(OperationFailure):  # e.g. a user who may not drop it
                await scratch.drop()
    return frozenset(o for o in options if known.get(o) is False)


async def _create(db: AsyncDatabase[Any], index: IndexDefinition, done: str) -> str | None:
    """Create the index; None, or the server's refusal."""
    try:
        await db[index.collection].create_index(list(index.keys), name=index.name, **index.options)
    except OperationFailure as exc:
        error = _error(exc)
        log.error("index %s could not be %s: %s", index.label, done, error)
        return error
    log.info("index %s %s", index.label, done)
    return None


async def _drop(db: AsyncDatabase[Any], collection: str, name: str) -> None:
    try:
        await db[collection].drop_index(name)
    except OperationFailure as exc:
        if exc.code != INDEX_NOT_FOUND:  # another process dropped it first
            raise


async def _restore(db: AsyncDatabase[Any], collection: str, spec: Mapping[str, Any]) -> None:
    options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns", "name")}
    await db[collection].create_index(list(spec["key"]), name=spec["name"], **options)


def _error(exc: OperationFailure) -> str:
    return f"{exc.code}: {(exc.details or {}).get('errmsg', str(exc))}"


async def reconcile(db: AsyncDatabase[Any], declared: Sequence[IndexDefinition], policy: IndexPolicy) -> Drift:
    """Compare, and under "enforce" create what is missing and rebuild what differs; the
    drift after acting (extra indexes are never dropped). A failed creation is in
    `errors` and leaves the index missing; connection errors propagate."""
    collections = list(dict.fromkeys(i.collection for i in declared))
    existing = await inspect(db, collections)
    drift = compare(declared, existing)
    if drift.in_sync:
        return drift
    unsupported = await unsupported_options(db, {o for i in declared for o in i.options})
    if unsupported:
        drift = compare(declared, existing, unsupported=unsupported)
    if policy == "report" or drift.in_sync:
        return drift
    errors: dict[str, str] = {}
    for label, left_out in drift.unsupported.items():
        if any(o not in DEGRADABLE for o in left_out):
            errors[label] = f"the server cannot keep {', '.join(o for o in left_out if o not in DEGRADABLE)}"
    old = {(c, s["name"]): s for c, specs in existing.items() for s in specs}
    for wanted in drift.different:
        await _drop(db, wanted.collection, wanted.name)
        if error := await _create(db, wanted.without(unsupported), "rebuilt as declared"):
            errors[wanted.label] = error
            try:
                await _restore(db, wanted.collection, old[(wanted.collection, wanted.name)])
            except OperationFailure as again:
                log.error("index %s could not be put back: %s", wanted.label, _error(again))
    for wanted in drift.missing:
        if wanted.label not in errors and (error := await _create(db, wanted.without(unsupported), "created")):
            errors[wanted.label] = error
    after = compare(declared, await inspect(db, collections), unsupported=unsupported)
    after.errors.update(errors)
    return after


__all__ = [
    "DEGRADABLE",
    "OPTIONS",
    "Drift",
    "IndexDefinition",
    "IndexPolicy",
    "compare",
    "default_name",
    "definition",
    "index",
    "inspect",
    "reconcile",
    "unsupported_options",
]
