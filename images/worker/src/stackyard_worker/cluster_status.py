"""The worker's writes to the status of its Stack's custom resources (the runs of Schedules,
the health of EmailProviders and Databases): one Kubernetes client for all of them, opened
on first use, and only where the config comes from a cluster (STACKYARD_STACK set)."""

from __future__ import annotations

import os
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.config.sources import kube_api_client
from stackyard.resources import GROUP, VERSION
from stackyard.runtime import Runtime

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 3


class ClusterStatus:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._kube: client.ApiClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(os.environ.get("STACKYARD_STACK"))

    @property
    def namespace(self) -> str:
        return self.runtime.config.config.namespace

    async def api(self) -> client.CustomObjectsApi:
        if self._kube is None:
            self._kube = await kube_api_client()
        return client.CustomObjectsApi(self._kube)

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        api = await self.api()
        found: dict[str, Any] = await api.get_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, plural, name
        )
        return found

    async def merge(self, plural: str, name: str, body: dict[str, Any]) -> None:
        """Merge-patch `body` (a status, with a metadata.resourceVersion to make it
        conditional) into <plural>/<name>/status."""
        api = await self.api()
        await api.patch_namespaced_custom_object_status(  # type: ignore[call-arg]  # _content_type is a kwarg
            GROUP, VERSION, self.namespace, plural, name, body, _content_type=MERGE_PATCH
        )

    async def merge_status(self, plural: str, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into <plural>/<name>/status, our conditions replacing their own
        entries among the others' (keeping lastTransitionTime while the status is the
        same), conditional on the resourceVersion read and read again on a conflict. False
        when the object does not exist (no error: it may come, or be gone)."""
        from .email_status import status_patch  # that module imports this one

        for attempt in range(CONFLICT_RETRIES):
            try:
                current = await self.get(plural, name)
                body = {
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                    "status": status_patch(current.get("status") or {}, status),
                }
                await self.merge(plural, name, body)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
        return False

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
