"""Where the binaries built by `make tools` live.

hack/tools.sh decides the layout (one directory per tool and pinned version under
$STACKYARD_CACHE, default ~/.cache/stackyard) and prints it (`hack/tools.sh env`). Each
path can be overridden by an environment variable, and the Kubernetes binaries by
KUBEBUILDER_ASSETS (an envtest asset folder with kube-apiserver, etcd and kubectl).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .process import HarnessError

HACK_DIR = Path(__file__).resolve().parents[3]
REPO_ROOT = HACK_DIR.parent
TOOLS_SCRIPT = HACK_DIR / "tools.sh"


def pinned_versions() -> dict[str, str]:
    """hack/versions.env as a dict (KUBERNETES_VERSION, HELM_VERSION, …)."""
    versions = {}
    for line in (HACK_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


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
    minio: Path

    @classmethod
    def locate(cls) -> Tools:
        """Where `make tools` puts each tool, as `hack/tools.sh env` says (it honours
        KUBEBUILDER_ASSETS and the STACKYARD_<TOOL> overrides): one source of truth."""
        out = subprocess.run(
            ["bash", str(TOOLS_SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return cls(
            kubebuilder_assets=Path(paths["KUBEBUILDER_ASSETS"]),
            helm=Path(paths["STACKYARD_HELM"]),
            kind=Path(paths["STACKYARD_KIND"]),
            ferretdb=Path(paths["STACKYARD_FERRETDB"]),
            otelcol=Path(paths["STACKYARD_OTELCOL"]),
            minio=Path(paths["STACKYARD_MINIO"]),
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
