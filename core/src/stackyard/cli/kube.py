"""The cluster as the commands that read or patch custom resources see it: the user's
kubeconfig (in a pod, its service account), its namespace, and the API server's refusals
as one line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import EXIT_USAGE, fail

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient


async def kube_client(namespace: str | None) -> tuple[ApiClient, str]:
    """An API client of the kubeconfig and the namespace to use (`namespace`, else the
    kubeconfig's); without a configuration, exit 2 with one line."""
    from kubernetes_asyncio.config import ConfigException

    from stackyard.config.sources import kube_api_client

    try:
        return await kube_api_client(), namespace or kube_namespace()
    except (ConfigException, OSError) as exc:
        fail(f"no Kubernetes configuration ($KUBECONFIG or ~/.kube/config): {exc}", EXIT_USAGE)


def kube_namespace() -> str:
    """The namespace of the kubeconfig's current context (in a pod: the pod's), else default."""
    token_dir = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (token_dir / "namespace").exists():
        return (token_dir / "namespace").read_text().strip()
    from kubernetes_asyncio.config import list_kube_config_contexts

    _, current = list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
    return str((current or {}).get("context", {}).get("namespace") or "default")


def kube_message(exc: Any) -> str:
    """The message of an ApiException's Status body (or the body, or the reason)."""
    try:
        return str(json.loads(exc.body).get("message") or exc.body)
    except (TypeError, ValueError):
        return str(exc.body or exc.reason)
