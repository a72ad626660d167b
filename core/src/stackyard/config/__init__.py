"""RuntimeConfig: its schema, its hash, and the live holder that api and worker read."""

from .live import AppliedConfig, LiveConfig
from .runtime import (
    AUTH_ADMIN_API_KEY,
    AUTH_ENCRYPTION_KEY,
    AUTH_SIGNING_KEYS,
    CONFIG_KEY,
    CREDENTIALS_REVISION_ANNOTATION,
    HASH_ANNOTATION,
    MONGODB_URI,
    REDIS_URL,
    SEARCH_API_KEY,
    TELEMETRY_SENTRY_DSN,
    RuntimeConfig,
    canonical_json,
    content_hash,
    credential_key,
    telemetry_header_key,
)
from .sources import FileConfigSource, KubernetesConfigSource, config_map_name, credentials_secret_name

__all__ = [
    "AUTH_ADMIN_API_KEY",
    "AUTH_ENCRYPTION_KEY",
    "AUTH_SIGNING_KEYS",
    "CONFIG_KEY",
    "CREDENTIALS_REVISION_ANNOTATION",
    "HASH_ANNOTATION",
    "MONGODB_URI",
    "REDIS_URL",
    "SEARCH_API_KEY",
    "TELEMETRY_SENTRY_DSN",
    "AppliedConfig",
    "FileConfigSource",
    "KubernetesConfigSource",
    "LiveConfig",
    "RuntimeConfig",
    "canonical_json",
    "config_map_name",
    "content_hash",
    "credential_key",
    "credentials_secret_name",
    "telemetry_header_key",
]
