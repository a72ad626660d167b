"""A Database's connection and client settings as PyMongo options, and the client made of them.

`client_kwargs` is pure: spec in, keyword arguments of `AsyncMongoClient` out. Settings left
unset in the spec are left out, so the connection string's own options (and then the driver's
defaults) apply; the timeouts always have a value (3 s unless the spec says otherwise), so a
dead server is noticed rather than waited on. `database_client` writes the TLS PEMs of the
Database's credentials to files (the driver reads certificates from files only) and makes the
client; `options_fingerprint` tells when a client must be remade.

Connection strings hold passwords: no error raised here quotes one (`redact_uri`, `scrub`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from ..config import MONGODB_URI, credential_key
from ..resources.base import duration_seconds
from ..resources.database import DatabaseSpec

DEFAULT_TIMEOUT_MS = 3000
"""connectTimeoutMS and serverSelectionTimeoutMS without a Database (and their spec defaults)."""

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@")


class DatabaseOptionsError(ValueError):
    """The connection string or the settings are not usable; the message quotes no password."""


def _ms(duration: str) -> int:
    return round(duration_seconds(duration) * 1000)


def client_kwargs(spec: DatabaseSpec | None) -> dict[str, Any]:
    """PyMongo keyword arguments for a Database's settings (None: the Stack's plain
    MONGODB_URI, with the default timeouts)."""
    if spec is None:
        return {"connectTimeoutMS": DEFAULT_TIMEOUT_MS, "serverSelectionTimeoutMS": DEFAULT_TIMEOUT_MS}
    pool, client, connection = spec.pool, spec.client, spec.connection
    kwargs: dict[str, Any] = {
        "maxPoolSize": pool.max_pool_size,
        "minPoolSize": pool.min_pool_size,
        "maxConnecting": pool.max_connecting,
        "connectTimeoutMS": _ms(client.connect_timeout),
        "serverSelectionTimeoutMS": _ms(client.server_selection_timeout),
        "readPreference": client.read_preference,
        "retryWrites": client.retryable_writes,
        "retryReads": client.retryable_reads,
    }
    optional_ms = {
        "maxIdleTimeMS": pool.max_idle_time,
        "waitQueueTimeoutMS": pool.wait_queue_timeout,
        "socketTimeoutMS": client.socket_timeout,
        "timeoutMS": client.timeout,
    }
    kwargs |= {key: _ms(value) for key, value in optional_ms.items() if value is not None}
    if client.max_staleness is not None:
        kwargs["maxStalenessSeconds"] = round(duration_seconds(client.max_staleness))
    if client.read_concern is not None:
        kwargs["readConcernLevel"] = client.read_concern
    if (concern := client.write_concern) is not None:
        kwargs["w"] = int(concern.w) if concern.w.isdigit() else concern.w
        if concern.journal is not None:
            kwargs["journal"] = concern.journal
        if concern.timeout is not None:
            kwargs["wTimeoutMS"] = _ms(concern.timeout)
    if connection.auth_source is not None:
        kwargs["authSource"] = connection.auth_source
    if connection.tls.enabled:  # not tls=False otherwise: the URI may say tls=true
        kwargs["tls"] = True
    if connection.tls.allow_invalid_hostnames:
        kwargs["tlsAllowInvalidHostnames"] = True
    return kwargs


def database_uri(credentials: Mapping[str, str], name: str | None) -> str:
    """The connection string of Database `name` (None: the Stack's MONGODB_URI); KeyError
    names the missing credential key, never a value."""
    key = credential_key("Database", name, "uri") if name is not None else MONGODB_URI
    try:
        return credentials[key]
    except KeyError:
        raise KeyError(f"credential {key!r} is not in the Stack's credentials Secret") from None


def _tls_pems(credentials: Mapping[str, str], name: str | None) -> dict[str, str]:
    """{"tlsCa": PEM, "tlsCertificate": PEM} as far as the credentials hold them."""
    if name is None:
        return {}
    keys = {credential: credential_key("Database", name, credential) for credential in ("tlsCa", "tlsCertificate")}
    return {credential: credentials[key] for credential, key in keys.items() if credentials.get(key)}


def options_fingerprint(spec: DatabaseSpec | None, credentials: Mapping[str, str], name: str | None) -> str:
    """A digest of everything a client is made from (settings, connection string, TLS PEMs):
    a client whose fingerprint changed is remade. Holds no secret in the clear."""
    settings = None if spec is None else spec.model_dump(mode="json", include={"connection", "pool", "client"})
    try:
        uri: str | None = database_uri(credentials, name)
    except KeyError:
        uri = None
    material = json.dumps([settings, name, uri, _tls_pems(credentials, name)], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _write_pem(tls_dir: Path, name: str, credential: str, pem: str) -> Path:
    """The PEM in a 0600 file named after its content (a client still using an older file
    keeps it), written to a temporary name first and renamed."""
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256(pem.encode()).hexdigest()[:12]
    path = tls_dir / f"{name}.{credential}.{digest}.pem"
    if not path.exists():
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(pem)
        partial.replace(path)
    return path


def database_client(
    uri: str,
    app_name: str,
    spec: DatabaseSpec | None,
    credentials: Mapping[str, str],
    name: str | None,
    tls_dir: Path | None = None,
) -> AsyncMongoClient[Any]:
    """A client with the Database's settings (None: the defaults); its CA bundle and client
    certificate (if the credentials of Database `name` hold them) go to 0600 files under
    `tls_dir`. Datetimes come back aware (UTC)."""
    kwargs = client_kwargs(spec)
    files = {"tlsCa": "tlsCAFile", "tlsCertificate": "tlsCertificateKeyFile"}
    for credential, pem in _tls_pems(credentials, name).items():
        if tls_dir is None:
            raise DatabaseOptionsError(f"Database {name}: TLS certificates need a directory to be written to")
        kwargs[files[credential]] = str(_write_pem(tls_dir, str(name), credential, pem))
    try:
        return AsyncMongoClient(uri, appname=app_name, tz_aware=True, **kwargs)
    except Exception as exc:
        raise DatabaseOptionsError(
            f"cannot make a MongoDB client for {name or 'the Stack'} ({redact_uri(uri)}): "
            f"{type(exc).__name__}: {scrub(str(exc), uri)}"
        ) from None


def redact_uri(uri: str) -> str:
    """The connection string with its password (and query options) left out:
    mongodb://app:***@db-0.example:27017/stackyard."""
    base = uri.partition("?")[0]
    return _USERINFO.sub(
        lambda m: f"{m['scheme']}{m['user']}{':***' if m['password'] is not None else ''}@", base, count=1
    )


def scrub(text: str, uri: str) -> str:
    """`text` (an error message) without the connection string's password or query."""
    match = _USERINFO.match(uri)
    secrets = [uri, uri.partition("?")[2]]
    if match and match["password"]:
        secrets.append(match["password"])
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
