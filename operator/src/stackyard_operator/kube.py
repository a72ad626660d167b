"""The operator's writes and reads through the Kubernetes API (kubernetes_asyncio).

Owned objects are written by server-side apply with one field manager and force:
applying the same manifest twice is a no-op on the server (no new resourceVersion),
which is what keeps a restart or a resync from churning anything.
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.resources import GROUP, VERSION

from .manifests import MANAGER

# kind -> (API path prefix, plural); the kinds a Stack owns plus our own.
_PATHS = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Stack": (f"/apis/{GROUP}/{VERSION}", "stacks"),
    "EmailProvider": (f"/apis/{GROUP}/{VERSION}", "emailproviders"),
    "EmailTemplate": (f"/apis/{GROUP}/{VERSION}", "emailtemplates"),
    "RateLimitPolicy": (f"/apis/{GROUP}/{VERSION}", "ratelimitpolicies"),
    "JobQueue": (f"/apis/{GROUP}/{VERSION}", "jobqueues"),
    "Schedule": (f"/apis/{GROUP}/{VERSION}", "schedules"),
    "IdentityProvider": (f"/apis/{GROUP}/{VERSION}", "identityproviders"),
    "Database": (f"/apis/{GROUP}/{VERSION}", "databases"),
    "Bucket": (f"/apis/{GROUP}/{VERSION}", "buckets"),
    "NotificationWorkflow": (f"/apis/{GROUP}/{VERSION}", "notificationworkflows"),
    "Webhook": (f"/apis/{GROUP}/{VERSION}", "webhooks"),
    "SearchIndex": (f"/apis/{GROUP}/{VERSION}", "searchindexes"),
    "OIDCClient": (f"/apis/{GROUP}/{VERSION}", "oidcclients"),
}


def object_path(kind: str, namespace: str, name: str, subresource: str | None = None) -> str:
    prefix, plural = _PATHS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}/{name}"
    return f"{path}/{subresource}" if subresource else path


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, Any]] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        return await self.api_client.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            response_types_map={200: "object", 201: "object"},
            _return_http_data_only=True,
        )

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return await self._call(
            "PATCH",
            object_path(manifest["kind"], meta["namespace"], meta["name"]),
            body=manifest,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", MANAGER), ("force", "true")],
        )

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """Delete an object if it is still the one seen (uid; "": whichever it is); gone
        already is fine."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self._call(
                "DELETE", object_path(kind, namespace, name), body=options, content_type="application/json"
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # 409: a new object of that name, not ours to delete
                raise

    async def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await self._call(
                "PATCH",
                object_path(kind, namespace, name, "status"),
                body={"status": status},
                content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data decoded, or None if it does not exist."""
        found = await self.secret_with_annotations(namespace, name)
        return found[0] if found else None

    async def secret_with_annotations(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.data or {}).items()}
        return data, dict(secret.metadata.annotations or {})

    async def secret_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret as the API returns it (data in base64, metadata with labels, annotations
        and owner references), or None if it does not exist."""
        try:
            return await self._call("GET", object_path("Secret", namespace, name))  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            config_map = await self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(config_map.data or {})
