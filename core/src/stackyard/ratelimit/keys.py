"""Who a request is counted as: the client IP behind trusted proxies, the authenticated
principal, an API key, a header, or everyone together. Pure functions."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .policy import Policy

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_SAFE_KEY = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_FORWARDED_ELEMENT = re.compile(r'(?:[^,"]|"[^"]*")+')
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;\s]*)', re.IGNORECASE)


def encode_key(value: str) -> str:
    """A key as it goes into a Redis key name: kept when short and plain, else a digest
    (never braces, which would break the hash tag, and never a long or odd value)."""
    if _SAFE_KEY.fullmatch(value):
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


def secret_key(value: str) -> str:
    """A key that is a secret (an API key): always a digest, so it never reaches Redis."""
    return "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(token: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a Forwarded node or an X-Forwarded-For entry (port, brackets and
    quotes stripped), or None when it is not one (`unknown`, an obfuscated `_name`)."""
    token = token.strip().strip('"')
    if token.startswith("["):
        token = token[1:].partition("]")[0]
    elif token.count(":") == 1:
        token = token.partition(":")[0]
    try:
        return ipaddress.ip_address(token)
    except ValueError:
        return None


def forwarded_for(forwarded: str) -> list[str]:
    """The `for=` nodes of a Forwarded header (RFC 7239), first hop first."""
    nodes = []
    for element in _FORWARDED_ELEMENT.findall(forwarded):
        found = _FORWARDED_FOR.search(element.strip())
        if found:
            nodes.append(found.group(1))
    return nodes


def client_ip(
    peer: str | None,
    headers: Mapping[str, str],
    trusted: Sequence[IPNetwork],
) -> str | None:
    """The client's address. The peer is the client unless it is a trusted proxy; then the
    hops of `Forwarded` (or, without it, `X-Forwarded-For`) are walked from the right, past
    trusted proxies, and the first one that is not trusted is the client. A hop that is
    not an address (`unknown`) is taken as it is written; if every hop is trusted, the
    first one is the client."""
    if peer is None:
        return None
    address = _address(peer)
    if address is None or not trusted or not any(address in net for net in trusted):
        return str(address) if address is not None else peer
    if "forwarded" in headers:
        hops = forwarded_for(headers["forwarded"])
    else:
        hops = [h for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    client = str(address)
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return hop.strip().strip('"') or client
        client = str(hop_address)
        if not any(hop_address in net for net in trusted):
            return client
    return client


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What key extraction reads from a request (header names lower-case)."""

    method: str
    host: str
    path: str
    peer: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: Any = None
    """The authenticated principal the auth layer put on the request (`.subject`, and
    `.api_key_id` for API keys), or None."""


def _principal_attr(principal: Any, name: str) -> str | None:
    if principal is None:
        return None
    value = principal.get(name) if isinstance(principal, Mapping) else getattr(principal, name, None)
    return str(value) if value else None


def request_key(policy: Policy, facts: RequestFacts, trusted: Sequence[IPNetwork] = ()) -> str | None:
    """The key a request is counted under for `policy`, or None when the request has no
    such key (no principal for `user`, no API key, the header absent): then the policy
    does not apply to it."""
    kind = policy.key_type
    if kind == "global":
        return "global"
    if kind == "ip":
        ip = client_ip(facts.peer, facts.headers, trusted)
        return encode_key(ip) if ip else None
    if kind == "user":
        subject = _principal_attr(facts.principal, "subject")
        return encode_key(subject) if subject else None
    if kind == "apiKey":
        key_id = _principal_attr(facts.principal, "api_key_id")
        if key_id:
            return encode_key(key_id)
        presented = facts.headers.get("x-api-key")
        return secret_key(presented) if presented else None
    value = facts.headers.get(policy.key_header or "")
    return encode_key(value) if value else None


def headers_from_asgi(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as a dict with lower-case names; repeated headers joined by commas."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
