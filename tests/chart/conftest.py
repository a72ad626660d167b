"""Fixtures for the chart's tests: helm rendering the chart, and installing it into the
harness's kube-apiserver (RBAC on, no kubelet: objects are stored and authorised, pods
never run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stack_chart import CHART, ChartNamespace, Helm, make_namespace
from stackyard_harness.kube import KubeCluster


@pytest.fixture(scope="session")
def chart_helm(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def cluster_helm(helm: str, kube: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm, tmp_path_factory.mktemp("helm-install"), kubeconfig=kube.kubeconfig)


@pytest.fixture
def chart_namespace(kube: KubeCluster) -> Iterator[ChartNamespace]:
    namespace = make_namespace(kube, "chart")
    yield namespace
    kube.kubectl("delete", "namespace", namespace.name, "--wait=false")


@pytest.fixture(scope="session")
def chart_crds(kube: KubeCluster) -> KubeCluster:
    """The chart's CRDs in the cluster already (as after a first install): a dry run does not install them."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART / "crds"))
    return kube
