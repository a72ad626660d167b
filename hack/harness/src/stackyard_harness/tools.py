"""Where the binaries built by `make tools` live.

The layout mirrors hack/tools.sh: one directory per tool and pinned version under
$STACKYARD_CACHE (default ~/.cache/stackyard). Each path can be overridden by an
environment variable, and the Kubernetes binaries by KUBEBUILDER_ASSETS (an envtest
asset folder with kube-apiserver, etcd and kubectl).
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from .process import HarnessError

HACK_DIR = Path(__file__).resolve().parents[3]
REPO_ROOT = HACK_DIR.parent


def pinned_versions() -> dict[str, str]:
    versions = {}
    for line in (HACK_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


def cache_dir() -> Path:
    return Path(os.environ.get("STACKYARD_CACHE", Path.home() / ".cache" / "stackyard"))


def _goarch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


class ToolMissing(HarnessError):
    """A binary that `make tools` (or apt) provides is not there."""

    def __init__(self, tool: str, path: Path | str, remedy: str = "make tools") -> None:
        super().__init__(f"{tool} not found at {path}: run `{remedy}`")
        self.tool = tool
        self.remedy = remedy


@dataclass(frozen=True)
class Tools:
    kubebuilder_assets: Path
    helm: Path
    kind: Path
    ferretdb: Path
    otelcol: Path

    @classmethod
    def locate(cls) -> Tools:
        v = pinned_versions()
        cache = cache_dir()
        env = os.environ.get
        assets = env("KUBEBUILDER_ASSETS") or cache / "k8s" / f"{v['KUBERNETES_VERSION']}-linux-{_goarch()}"
        return cls(
            kubebuilder_assets=Path(assets),
            helm=Path(env("STACKYARD_HELM") or cache / "helm" / v["HELM_VERSION"] / "helm"),
            kind=Path(env("STACKYARD_KIND") or cache / "kind" / v["KIND_VERSION"] / "kind"),
            ferretdb=Path(env("STACKYARD_FERRETDB") or cache / "ferretdb" / v["FERRETDB_VERSION"] / "ferretdb"),
            otelcol=Path(env("STACKYARD_OTELCOL") or cache / "otelcol" / v["OTELCOL_VERSION"] / "otelcol-stackyard"),
        )

    def kube_binary(self, name: str) -> Path:
        """kube-apiserver, etcd, kubectl or kube-controller-manager from the asset folder."""
        return _existing(name, self.kubebuilder_assets / name)

    def require(self, name: str) -> Path:
        """The path of one tool by its name, or ToolMissing naming what to run."""
        if name in ("kube-apiserver", "etcd", "kubectl", "kube-controller-manager"):
            return self.kube_binary(name)
        if name == "redis-server":
            found = shutil.which("redis-server")
            if not found:
                raise ToolMissing("redis-server", "PATH", "sudo hack/apt-packages.sh (Debian's redis-server)")
            return Path(found)
        return _existing(name, getattr(self, name))


def _existing(name: str, path: Path) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ToolMissing(name, path)
    return path
