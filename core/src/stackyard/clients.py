"""The one place where Redis and MongoDB clients are made."""

from __future__ import annotations

import redis.asyncio as redis
from pymongo import AsyncMongoClient


def redis_client(url: str) -> redis.Redis:
    """A pooled asyncio Redis client; short timeouts so a dead Redis is noticed, not waited on."""
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def mongo_client(uri: str, app_name: str) -> AsyncMongoClient:  # type: ignore[type-arg]
    return AsyncMongoClient(uri, appname=app_name, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True)
