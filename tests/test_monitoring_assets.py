"""The monitoring assets in daemon/ against the code: every query in the Grafana dashboard and
every alert rule must ask only for series the real collector exports (scraped from a real
Pipeline fed a simulated session), promtool must accept the config and the rules, and the
rules must fire, or stay quiet, on the cases in tests/promtool/aurum-alerts.test.yml."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

_native = pytest.importorskip("aurum._native")
pytest.importorskip("prometheus_client")

import monitoring_assets as ma  # noqa: E402

from aurum import metrics, sim  # noqa: E402
from aurum.config import MetricsConfig  # noqa: E402

# The brief of each alert: one rule per failure the daemon can have (names are the contract
# with whoever routes them, so renaming one is a visible change here).
REQUIRED_ALERTS = {
    "AurumDaemonDown", "AurumDaemonAbsent", "AurumHeartbeatStale", "AurumFeedDown", "AurumFeedDegraded",
    "AurumFallbackActive", "AurumReconnectStorm", "AurumDecodeErrors", "AurumReadersLapped",
    "AurumGatewayToSignalLatencyHigh", "AurumSocketToProcessedLatencyHigh",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ma.Exported:
    path = tmp_path_factory.mktemp("monitoring") / "s.dbn.zst"
    sim.run_to_files("mixed", path, seed=3, records=20_000)
    p = _native.Pipeline()
    f = _native.DbnFile(str(path))
    while p.feed_file(f, 1 << 16):
        pass
    assert p.stats()["records_by_rtype"][0xA0] == 20_000
    return ma.exported_metrics(p)


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return ma.dashboard()


def test_exported_metrics_cover_the_collector(exported: ma.Exported) -> None:
    """The derivation itself: one series per family, the vocabularies complete."""
    assert exported.series["aurum_feed_state"]["state"] == set(metrics.FEED_STATES)
    assert exported.series["aurum_feed_source"]["source"] == set(metrics.SOURCES)
    assert exported.series["aurum_signals_total"]["action"] == set(metrics.ACTIONS)
    assert {"mbo", "mbp-10", "trades"} <= exported.series["aurum_records_total"]["rtype"]
    assert set(metrics.PIPELINE_RINGS) <= exported.series["aurum_ring_occupancy"]["ring"]
    for key in metrics.LATENCIES:
        assert exported.families[f"aurum_{key}_seconds"] == "histogram"
        assert f"aurum_{key}_seconds_bucket" in exported.series
    assert "part" in exported.series["aurum_metrics_errors_total"]


def test_lexer_finds_every_selector() -> None:
    sels = ma.selectors('histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="1", y=~"b|c"}[5m:1m]))) '
                        '> on (job) group_left (z) max without (q) (b offset 1h30m) and {__name__="c"}')
    assert [(s.name, s.matchers) for s in sels] == [
        ("a_bucket", [("x", "=", "1"), ("y", "=~", "b|c")]), ("b", []), ("c", [])]
    assert ma.grafana_to_promql('rate(x{i=~"$instance"}[$__rate_interval])') == 'rate(x{i=~".*"}[5m])'


def test_checker_catches_drift(exported: ma.Exported) -> None:
    """The check must fail on the mistakes it exists for."""
    assert exported.problems("t", "rate(aurum_records_total[5m])") == []
    for bad in ("aurum_record_total", 'aurum_feed_state{status="live"}', 'aurum_feed_state{state="up"}',
                'aurum_feed_state{state=~"recovering|stail"}', 'aurum_records_total{rtype=~"zz.*"}',
                "aurum_latency_gateway_to_signal_seconds_bucket"):
        assert exported.problems("t", bad), bad


def test_dashboard_queries_use_only_exported_metrics(dash: dict[str, Any], exported: ma.Exported) -> None:
    exprs = ma.dashboard_exprs(dash)
    assert len(exprs) >= 20
    problems = [p for where, expr in exprs for p in exported.problems(where, expr)]
    var = next(v for v in dash["templating"]["list"] if v["name"] == "instance")
    metric = var["query"]["query"].split("label_values(")[1].split(",")[0].strip()
    problems += exported.problems("variable instance", metric)
    assert not problems, "\n".join(problems)


def test_alert_rules_use_only_exported_metrics(exported: ma.Exported) -> None:
    problems = [p for r in ma.alert_rules() for p in exported.problems(r["alert"], r["expr"])]
    assert not problems, "\n".join(problems)


def test_every_exported_family_is_charted_or_alerted(dash: dict[str, Any], exported: ma.Exported) -> None:
    """The other direction: a metric added to the collector shows up in the assets too."""
    used = {s.name for _, e in ma.dashboard_exprs(dash) for s in ma.selectors(ma.grafana_to_promql(e))}
    used |= {s.name for r in ma.alert_rules() for s in ma.selectors(r["expr"])}
    unused = [fam for fam in exported.families
              if not any(name == fam or name.startswith(fam + "_") for name in used)]
    assert not unused, f"exported but neither on the dashboard nor in an alert: {unused}"


def test_dashboard_is_importable(dash: dict[str, Any]) -> None:
    assert dash["schemaVersion"] >= 39 and dash["uid"] and dash["title"] and dash["id"] is None
    ds = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    panels = list(ma.dashboard_panels(dash))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
        if p["type"] == "row":
            continue
        # No data source uid baked in: the dashboard works with whatever Prometheus it is given.
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("record type", "latency", "feed state", "source", "signals", "zones", "ring occupancy"):
        assert topic in titles, topic


def test_alert_rules_are_complete() -> None:
    rules = ma.alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)
    for r in rules:
        assert "for" in r, r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"].strip() and r["annotations"]["description"].strip(), r["alert"]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = ma.load_yaml(ma.ALERT_TESTS)["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    names = {r["alert"] for r in ma.alert_rules()}
    assert names <= fires, f"no firing case for {names - fires}"
    assert names <= quiet, f"no quiet case for {names - quiet}"


def test_scrape_target_matches_the_daemon_defaults() -> None:
    """prometheus.yml, daemon/aurum.toml, the config defaults and the collector agree on where
    the metrics are, and Prometheus loads the shipped rules."""
    cfg = ma.load_yaml(ma.PROM_CONFIG)
    toml = tomllib.loads((ma.REPO / "daemon" / "aurum.toml").read_text())["metrics"]
    want = f"{toml['host']}:{toml['port']}"
    assert want == f"{MetricsConfig().host}:{MetricsConfig().port}"
    assert want == f"{metrics.DEFAULT_HOST}:{metrics.DEFAULT_PORT}"
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "aurum")
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [want]
    assert [ma.PROM_DIR / f for f in cfg["rule_files"]] == [ma.ALERTS]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ma.need_tool("promtool"), *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_config_and_rules() -> None:
    for args in (("check", "config", str(ma.PROM_CONFIG)), ("check", "rules", str(ma.ALERTS))):
        out = promtool(*args)
        assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_promtool_alert_unit_tests() -> None:
    out = promtool("test", "rules", str(ma.ALERT_TESTS))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_promtool_parses_every_dashboard_query(dash: dict[str, Any], tmp_path: Path) -> None:
    """Each query as a recording rule: promtool then checks its PromQL syntax."""
    yaml = ma.yaml_module()
    rules = [{"record": f"dashboard:query:{i}", "expr": ma.grafana_to_promql(expr)}
             for i, (_, expr) in enumerate(ma.dashboard_exprs(dash))]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", str(path))
    assert out.returncode == 0 and f"{len(rules)} rules found" in out.stdout, out.stdout + out.stderr
