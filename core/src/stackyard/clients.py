"""The one place where Redis and MongoDB clients are made."""

from __future__ import annotations

from typing import Any, TypeAlias

import redis.asyncio as redis
from pymongo import AsyncMongoClient

from .db.options import database_client

AnyRedis: TypeAlias = "redis.Redis | redis.RedisCluster"
MAX_CONNECTIONS = 200
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def redis_client(url: str) -> AnyRedis:
    """A pooled asyncio Redis client; short timeouts so a dead Redis is noticed, not waited on.
    More concurrent commands than the pool holds wait for a connection (the callers' own
    time budgets bound the wait) instead of failing.

    `redis+cluster://host:port` (or `rediss+cluster://`) names one node of a Redis Cluster:
    the client discovers the others and routes each command by its key's hash slot.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in CLUSTER_SCHEMES:
        return redis.RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}",
            decode_responses=False,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            max_connections=MAX_CONNECTIONS,
        )
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=5.0,
        decode_responses=False,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    return redis.Redis.from_pool(pool)


def mongo_client(uri: str, app_name: str) -> AsyncMongoClient[Any]:
    """A MongoDB client with the default settings (3 s timeouts, aware datetimes); a
    Database's own settings: `stackyard.db.options.database_client`."""
    return database_client(uri, app_name, None, {}, None)
