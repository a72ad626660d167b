"""The harness's helm lints and renders a chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

CHART = Path(__file__).parent / "data" / "minimal-chart"


def test_helm_lint_and_template(helm):
    lint = subprocess.run([helm, "lint", str(CHART)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout

    rendered = subprocess.run(
        [helm, "template", "demo", str(CHART), "--set", "greeting=hi"], capture_output=True, text=True, check=True
    ).stdout
    (config_map,) = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert config_map["metadata"]["name"] == "demo-minimal"
    assert config_map["data"] == {"greeting": "hi"}


def test_helm_lint_reports_a_broken_template(helm, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(CHART), str(broken)], check=True)
    (broken / "templates" / "configmap.yaml").write_text("{{ .Values.greeting | nosuchfunction }}\n")
    lint = subprocess.run([helm, "lint", str(broken)], capture_output=True, text=True)
    assert lint.returncode != 0
    assert "nosuchfunction" in lint.stdout + lint.stderr
