"""Where a process gets its config: the Stack's ConfigMap and Secret through the
Kubernetes API (watched, so a change applies within a second), or two files for local
runs (polled)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .live import LiveConfig
from .runtime import CONFIG_KEY, CREDENTIALS_REVISION_ANNOTATION

if TYPE_CHECKING:
    from kubernetes_asyncio import client

log = logging.getLogger(__name__)
# kubernetes_asyncio is imported where it is used: it takes most of a second to import, which
# programs on file configs and the CLI's local commands should not pay.


def config_map_name(stack: str) -> str:
    return f"{stack}-config"


def credentials_secret_name(stack: str) -> str:
    return f"{stack}-credentials"


async def kube_api_client() -> client.ApiClient:
    """An API client from the pod's service account, or else from KUBECONFIG."""
    from kubernetes_asyncio import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    configuration = client.Configuration()
    await config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    return client.ApiClient(configuration)


class KubernetesConfigSource:
    """Watches ConfigMap <stack>-config and Secret <stack>-credentials."""

    def __init__(self, live: LiveConfig, namespace: str, stack: str) -> None:
        self.live = live
        self.namespace = namespace
        self.stack = stack
        self._config_json: str | None = None
        self._credentials: dict[str, str] | None = None
        self._revision: int | None = None
        self.connected = False

    async def run(self) -> None:
        from kubernetes_asyncio import client

        api_client = await kube_api_client()
        async with api_client:
            core = client.CoreV1Api(api_client)
            await asyncio.gather(
                self._watch(core.list_namespaced_config_map, config_map_name(self.stack), self._on_config_map),
                self._watch(core.list_namespaced_secret, credentials_secret_name(self.stack), self._on_secret),
            )

    async def _watch(self, list_fn: Any, name: str, on_object: Any) -> None:
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        backoff = 0.5
        while True:
            try:
                listing = await list_fn(self.namespace, field_selector=f"metadata.name={name}")
                for item in listing.items:
                    on_object(item)
                self.connected = True
                backoff = 0.5
                stream = watch.Watch().stream(
                    list_fn,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=300,
                )
                async for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        on_object(event["object"])
                    elif event["type"] == "DELETED":
                        log.warning("%s was deleted; keeping the config in force", name)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                log.warning(
                    "watching %s/%s failed: %s %s; retrying in %.1fs",
                    self.namespace,
                    name,
                    exc.status,
                    exc.reason,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            except Exception as exc:
                log.warning(
                    "watching %s/%s failed: %s; retrying in %.1fs", self.namespace, name, type(exc).__name__, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    def _on_config_map(self, obj: Any) -> None:
        self._config_json = (obj.data or {}).get(CONFIG_KEY)
        self._offer()

    def _on_secret(self, obj: Any) -> None:
        data = obj.data or {}
        self._credentials = {k: base64.b64decode(v).decode() for k, v in data.items()}
        revision = (obj.metadata.annotations or {}).get(CREDENTIALS_REVISION_ANNOTATION)
        self._revision = int(revision) if revision and revision.isdigit() else None
        self._offer()

    def _offer(self) -> None:
        if self._config_json is not None and self._credentials is not None:
            self.live.offer(self._config_json, self._credentials, self._revision)


class FileConfigSource:
    """Reads <dir>/config.json and <dir>/credentials.json (a flat JSON object) and
    re-reads them when they change."""

    def __init__(self, live: LiveConfig, directory: Path, interval: float = 0.5) -> None:
        self.live = live
        self.directory = directory
        self.interval = interval
        self.connected = True

    def load_once(self) -> None:
        config_path, credentials_path = self.directory / CONFIG_KEY, self.directory / "credentials.json"
        credentials = json.loads(credentials_path.read_text()) if credentials_path.exists() else {}
        self.live.offer(config_path.read_text(), credentials, None)

    async def run(self) -> None:
        seen: tuple[float, ...] = ()
        while True:
            try:
                stamp = tuple(p.stat().st_mtime for p in sorted(self.directory.glob("*.json")))
                if stamp != seen:
                    seen = stamp
                    self.load_once()
            except (OSError, ValueError) as exc:
                log.warning("cannot read config from %s: %s", self.directory, exc)
            await asyncio.sleep(self.interval)
