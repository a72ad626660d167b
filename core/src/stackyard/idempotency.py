"""Idempotency keys of the accepting calls (POST /v1/emails, POST /v1/notify), kept in Redis.

The first request to claim a key owns it for the window: it stores its answer under the key.
The same request again (the same body, by fingerprint) gets that answer back; another
request with the key is a 409. A request that fails before it was accepted releases its key,
so that a retry with the same key is not answered with an answer that was never given.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from pydantic import BaseModel

from .clients import AnyRedis
from .problems import Conflict

log = logging.getLogger(__name__)


class IdempotencyKeys:
    def __init__(self, redis: AnyRedis, *, prefix: str, scope: str, window: float, what: str) -> None:
        """`scope` (the Stack's namespace/name) keeps Stacks that share a Redis apart; `what`
        names the thing a request makes, for the 409's words ("message", "trigger")."""
        self.redis = redis
        self.prefix = prefix
        self.scope = scope
        self.ttl = max(1, round(window))
        self.what = what

    def _key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(f"{self.scope}\0{key}".encode()).hexdigest()

    async def claim(self, key: str, request: BaseModel, answer: dict[str, Any]) -> dict[str, Any] | None:
        """None when the key is now this request's (its `answer`, which has an "id", is kept);
        else the answer of the key's first request. Conflict when that request was another."""
        fingerprint = hashlib.sha256(request.model_dump_json(by_alias=True).encode()).hexdigest()
        value = orjson.dumps({"answer": answer, "fingerprint": fingerprint})
        if await self.redis.set(self._key(key), value, nx=True, ex=self.ttl):
            return None
        held = await self.redis.get(self._key(key))
        if held is None:  # expired in between: take it
            await self.redis.set(self._key(key), value, ex=self.ttl)
            return None
        first = orjson.loads(held)
        if first["fingerprint"] != fingerprint:
            raise Conflict(
                f"this idempotency key was used with a different request; use a new key for a new {self.what}",
                id=first["answer"]["id"],
            )
        return dict(first["answer"])

    async def release(self, key: str, answer_id: str) -> None:
        """Give the key up if it still holds this request's answer (best effort)."""
        try:
            held = await self.redis.get(self._key(key))
            if held is not None and orjson.loads(held)["answer"]["id"] == answer_id:
                await self.redis.delete(self._key(key))
        except Exception:
            log.warning("%s %s: its idempotency key could not be released", self.what, answer_id)
