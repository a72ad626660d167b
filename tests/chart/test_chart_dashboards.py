"""The Grafana dashboards of charts/stack/dashboards: well-formed dashboards that the chart
ships as ConfigMaps for the Grafana sidecar, whose every query asks for series that the
chart's collector really serves when fed the telemetry contract's metrics."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from chart_collector import LocalPorts, collector_objects, config_text, feed_contract_metrics, merge, running, scrape
from stack_chart import CHART
from stackyard_harness.pytest_plugin import unavailable
from stackyard_harness.tools import ToolMissing, Tools

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
AREAS = {"api", "jobs", "email", "ratelimit"}

# The telemetry contract's OTel names as the collector's prometheus exporter serves them
# (dots to underscores, _seconds for unit s, _total for counters, {curly} units dropped,
# _ratio for a gauge of unit 1); a histogram is served as _bucket, _count and _sum.
SERVED_AS = {
    "http.server.request.duration": "http_server_request_duration_seconds",
    "http.server.active_requests": "http_server_active_requests",
    "messaging.process.duration": "messaging_process_duration_seconds",
    "messaging.client.consumed.messages": "messaging_client_consumed_messages_total",
    "stackyard.jobs.outcomes": "stackyard_jobs_outcomes_total",
    "stackyard.jobs.queue.size": "stackyard_jobs_queue_size",
    "stackyard.email.sends": "stackyard_email_sends_total",
    "stackyard.email.send.duration": "stackyard_email_send_duration_seconds",
    "stackyard.email.failovers": "stackyard_email_failovers_total",
    "stackyard.email.breaker.state": "stackyard_email_breaker_state_ratio",
    "stackyard.ratelimit.decisions": "stackyard_ratelimit_decisions_total",
    "stackyard.auth.events": "stackyard_auth_events_total",
    "stackyard.operator.reconciles": "stackyard_operator_reconciles_total",
    "stackyard.operator.reconcile.duration": "stackyard_operator_reconcile_duration_seconds",
    "stackyard.config.applied": "stackyard_config_applied",
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target and every query variable."""
    found = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


# -- which series a query reads ----------------------------------------------------------

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{(?P<matchers>[^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
RANGE = re.compile(r"\[[^\]]*\]")
IDENTIFIER = re.compile(r"(?<![\w$:])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:]*\s*\()")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")


def read_series(promql: str) -> tuple[dict[str, set[str]], set[str]]:
    """The metric names a PromQL expression (or a Grafana label_values query) reads, each with
    the label names its selectors match on, and the label names it groups by. Enough of
    PromQL for dashboards: selectors, ranges, functions, aggregations and binary operators."""
    wanted: set[str] = set()
    if match := LABEL_VALUES.match(promql):
        promql, wanted = match["selector"], {match["label"]}
    text = STRING.sub('""', promql)
    grouping = {label.strip() for labels in GROUPING.findall(text) for label in labels.split(",") if label.strip()}
    text = GROUPING.sub(" ", text)
    metrics: dict[str, set[str]] = {}
    for selector in SELECTOR.finditer(text):
        assert selector["name"], f"a selector without a metric name: {promql}"
        metrics.setdefault(selector["name"], set()).update(MATCHER.findall(selector["matchers"]), wanted)
    text = RANGE.sub(" ", SELECTOR.sub(lambda m: f" {m['name']} ", text))
    for name in IDENTIFIER.findall(text):
        if name not in KEYWORDS:
            metrics.setdefault(name, set()).update(wanted)
    return metrics, grouping


def test_read_series_finds_names_matchers_and_grouping_labels():
    metrics, grouping = read_series(
        'sum by (route) (rate(a_total{job=~"$job", code=~"5.."}[$__rate_interval])) / '
        "sum by (route) (rate(a_total[5m])) or vector(0) > bool on (job) group_left (x) b_info"
    )
    assert metrics == {"a_total": {"job", "code"}, "b_info": set()}
    assert grouping == {"route", "job", "x"}
    assert read_series('label_values(c_total{ns=~"$ns"}, stack)') == ({"c_total": {"ns", "stack"}}, set())
    assert read_series("histogram_quantile(0.95, sum by (le) (rate(d_bucket[1m])))") == ({"d_bucket": set()}, {"le"})


# -- the dashboards as files -------------------------------------------------------------


def test_there_is_a_dashboard_per_area():
    assert {path.stem for path in DASHBOARDS} == AREAS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path):
    dashboard = load(path)  # valid JSON, or this raises
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), dashboard.get("uid")
    assert dashboard["title"].startswith("stackyard / ")
    assert "stackyard" in dashboard["tags"]
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    for panel in all_panels(dashboard):
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]


def test_dashboard_uids_are_unique():
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_picks_its_prometheus_and_filters_by_namespace_stack_and_job(path):
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, label in (("namespace", "k8s_namespace_name"), ("stack", "stackyard_stack"), ("job", "job")):
        assert variables[name]["type"] == "query" and variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["query"]["query"].endswith(f", {label})")
        # "All" must match series without the label too (an empty value matches .*).
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    for panel in all_panels(load(path)):
        for target in panel.get("targets", []):
            for matchers in read_series(target["expr"])[0].values():
                assert {"k8s_namespace_name", "stackyard_stack", "job"} <= matchers, target["expr"]


# -- the dashboards in the chart ---------------------------------------------------------


def dashboard_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in objects
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"
    }


def test_no_dashboards_unless_asked(chart_helm):
    assert not dashboard_maps(chart_helm.template())


def test_each_dashboard_is_a_config_map_labelled_for_the_grafana_sidecar(chart_helm):
    maps = dashboard_maps(chart_helm.template({"dashboards": {"enabled": True}}))
    assert set(maps) == {f"demo-stack-dashboard-{area}" for area in AREAS}
    for path in DASHBOARDS:
        config_map = maps[f"demo-stack-dashboard-{path.stem}"]
        assert config_map["metadata"]["namespace"] == "apps"
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stackyard"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "stackyard"}
        assert json.loads(config_map["data"][f"stackyard-{path.name}"]) == load(path)


def test_sidecar_label_folder_and_namespace_come_from_values(chart_helm):
    values = {
        "dashboards": {
            "enabled": True,
            "label": "grafana.com/dashboard",
            "labelValue": "stackyard",
            # null removes the default folder annotation (helm merges maps of values)
            "annotations": {"grafana_folder": None, "k8s-sidecar-target-directory": "/tmp/dashboards/stackyard"},
            "namespace": "monitoring",
        }
    }
    for config_map in dashboard_maps(chart_helm.template(values)).values():
        assert config_map["metadata"]["labels"]["grafana.com/dashboard"] == "stackyard"
        assert "grafana_dashboard" not in config_map["metadata"]["labels"]
        assert config_map["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "/tmp/dashboards/stackyard"}
        assert config_map["metadata"]["namespace"] == "monitoring"


def test_dashboards_refuse_a_metric_name_prefix(chart_helm):
    values = {
        "dashboards": {"enabled": True},
        "otelCollector": {"prometheusExporter": {"enabled": True, "namespace": "app"}},
    }
    result = chart_helm.try_template(values)
    assert result.returncode != 0
    assert "dashboards query unprefixed metric names" in result.stderr


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"dashboards": {"lable": "x"}}, "/dashboards"),
        ({"dashboards": {"labelValue": "not a label value"}}, "/dashboards/labelValue"),
        ({"dashboards": {"annotations": {"grafana_folder": 1}}}, "/dashboards/annotations/grafana_folder"),
    ],
)
def test_dashboard_values_are_checked_by_the_schema(chart_helm, values, field):
    result = chart_helm.try_template(values)
    assert result.returncode != 0 and f"at '{field}'" in result.stderr, result.stderr


# -- every query against what the collector serves ----------------------------------------


@pytest.fixture(scope="module")
def served(chart_helm, tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    """The series the chart's collector (prometheus exporter on, default resourceLabels)
    serves after one sample of every contract metric, sent over OTLP by the SDK."""
    try:
        otelcol = Tools.locate().require("otelcol")
    except ToolMissing as exc:
        unavailable(exc)
        raise
    ports = LocalPorts()
    values = merge(ports.values(), {"otelCollector": {"prometheusExporter": {"enabled": True}}})
    expected = {name + "_bucket" if name.endswith("_seconds") else name for name in SERVED_AS.values()}
    with running(otelcol, config_text(collector_objects(chart_helm, values)), ports, tmp_path_factory.mktemp("dash")):
        feed_contract_metrics(ports.otlp_http)
        deadline = time.monotonic() + 20
        while not expected <= set(series := scrape(ports.prometheus)):
            assert time.monotonic() < deadline, f"never served: {sorted(expected - set(series))}"
            time.sleep(0.2)
    return series


def test_collector_serves_every_contract_metric_under_its_prometheus_name(served):
    for otel_name, name in SERVED_AS.items():
        families = [name + suffix for suffix in ("_bucket", "_count", "_sum")] if name.endswith("_seconds") else [name]
        for family in families:
            assert family in served, f"{otel_name}: {family} not served; served: {sorted(served)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_reads_series_the_collector_serves(served, path):
    for expr in queries(load(path)):
        metrics, grouping = read_series(expr)
        assert metrics, f"no metric in {expr}"
        labels_of_expr: set[str] = set()
        for name, matchers in metrics.items():
            assert name in served, f"{path.name}: {name} is not served by the collector\n{expr}"
            labels = set().union(*served[name])
            assert matchers <= labels, f"{path.name}: {name} has no {sorted(matchers - labels)}\n{expr}"
            labels_of_expr |= labels
        assert grouping <= labels_of_expr, f"{path.name}: no series has {sorted(grouping - labels_of_expr)}\n{expr}"
