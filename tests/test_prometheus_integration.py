"""A real Prometheus (Debian's package) scraping the real daemon on a simulated session:
``aurum gateway --sim`` -> ``aurum run`` (metrics on a free port) <- ``prometheus`` with the
shipped scrape config and alert rules, only the target and intervals changed. Checked through
Prometheus's HTTP API: the series are there with sane values, the rule groups load and
evaluate without error, no alert fires on a healthy daemon, and every dashboard query runs."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aurum._native")

import monitoring_assets as ma  # noqa: E402

AURUM = [sys.executable, "-m", "aurum.cli"]
STARTUP_S = 180  # gateway simulation + daemon + Prometheus on a loaded 2-core machine

# Series the daemon does not fill yet (aurum.daemon.Daemon.metrics_state has no
# last_heartbeat_ns): the collector exports the family with no sample, so queries on it are
# empty, not wrong.
NOT_FED_YET: set[str] = set()
# Series only after a malformed daemon-state value, or an alert firing: empty is healthy.
EMPTY_WHEN_HEALTHY = {"aurum_metrics_errors_total", "ALERTS"}


def _fake_key() -> str:
    return "db-" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(29))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # a rejected query: Prometheus's error says why
        raise AssertionError(f"{url}: {e.code} {e.read().decode(errors='replace')}") from None


@dataclass
class Stack:
    prom: str  # http://127.0.0.1:PORT
    target: str  # the daemon's host:port, Prometheus's `instance` label
    daemon_log: Path
    prom_log: Path

    def api(self, path: str, **params: str) -> Any:
        body = _get(f"{self.prom}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def wait_for(self, expr: str, timeout: float = 90) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expr} never returned data; daemon log: "
                             f"{self.daemon_log.read_text()[-2000:]}\n"
                             f"prometheus log: {self.prom_log.read_text()[-2000:]}")


def _prometheus_config(target: str, out: Path) -> Path:
    """The shipped prometheus.yml with only the target and the intervals changed (1 s, so the
    test sees scrapes and rule evaluations within seconds)."""
    cfg = ma.load_yaml(ma.PROM_CONFIG)
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(ma.ALERTS)]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "aurum")
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [target]}]
    out.write_text(ma.yaml_module().safe_dump(cfg))
    return out


def _start_prometheus(config: Path, tmp: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = ma.need_tool("prometheus")
    for _ in range(3):  # the free port can be taken between probe and bind: try another
        port = _free_port()
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log.open("w"))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return proc, url
            except OSError:
                time.sleep(0.3)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if "address already in use" not in log.read_text():
            break
    raise AssertionError(f"prometheus did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ma.need_tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    key = _fake_key()
    shm = f"aurum-test-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[Any]] = []
    try:
        gw = subprocess.Popen([*AURUM, "gateway", "--sim", "mixed", "--sim-records", "100000", "--sim-dir",
                               str(tmp / "sim"), "--port", "0", "--speed", "20x", "--at-end", "idle"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "AURUM_GATEWAY_KEYS": key})
        procs.append(gw)
        assert gw.stdout is not None
        port = int(gw.stdout.readline().split("127.0.0.1:")[1].split()[0])
        env = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
               "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6",
               "AURUM_FEED_STYPE_IN": "raw_symbol",
               "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": shm,
               "AURUM_PERSISTENCE_CHECKPOINT": str(tmp / "iceberg-memory.bin"), "AURUM_METRICS_PORT": "0",
               # 5 s bars and loose thresholds: signals (and their gauges) within seconds.
               "AURUM_SIGNALS_BAR_INTERVAL_S": "5", "AURUM_SIGNALS_ENTER": "0.2", "AURUM_SIGNALS_EXIT": "0.1",
               "AURUM_SIGNALS_MIN_CONFIDENCE": "0.1", "AURUM_SIGNALS_COOLDOWN_BARS": "1"}
        daemon_log = tmp / "daemon.log"
        d = subprocess.Popen([*AURUM, "run"], stderr=daemon_log.open("w"), stdout=subprocess.DEVNULL, env=env)
        procs.append(d)
        deadline = time.monotonic() + STARTUP_S
        while "metrics on http://" not in daemon_log.read_text():
            assert d.poll() is None and time.monotonic() < deadline, daemon_log.read_text()
            time.sleep(0.1)
        target = daemon_log.read_text().split("metrics on http://")[1].split("/")[0]
        assert target.startswith("127.0.0.1:")  # loopback only, as configured
        prom_log = tmp / "prometheus.log"
        prom, url = _start_prometheus(_prometheus_config(target, tmp / "prometheus.yml"), tmp, prom_log)
        procs.append(prom)
        s = Stack(url, target, daemon_log, prom_log)
        s.wait_for('aurum_records_total{rtype="mbo"} > 0', timeout=STARTUP_S)
        s.wait_for('aurum_feed_state{state="live"} == 1')
        s.wait_for("aurum_signal_confidence >= 0")  # a signal has been published
        yield s
        assert key not in daemon_log.read_text() and key not in prom_log.read_text()
    finally:
        for p in reversed(procs):  # Prometheus, the daemon (SIGTERM: its graceful stop), the gateway
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        Path("/dev/shm", shm).unlink(missing_ok=True)


def test_series_are_scraped_with_sane_values(stack: Stack) -> None:
    sel = f'{{job="aurum", instance="{stack.target}"}}'
    assert stack.value(f"up{sel}") == 1
    assert stack.value(f'aurum_records_total{{rtype="mbo", instance="{stack.target}"}}') > 0
    assert stack.value(f'aurum_feed_state{{state="live", instance="{stack.target}"}}') == 1
    assert stack.value('sum(aurum_feed_state)') == 1  # exactly one state is current
    assert stack.value('aurum_feed_source{source="databento"}') == 1
    assert stack.value('sum(aurum_feed_source)') == 1
    assert stack.value("aurum_bytes_fed_total") > 0
    assert stack.value("aurum_pipeline_failed") == 0
    assert stack.value("aurum_decode_errors_total") == 0
    assert stack.value("aurum_gateway_errors_total") == 0
    occupancy = stack.query("aurum_ring_occupancy")
    assert occupancy and all(0 <= float(r["value"][1]) <= 1 for r in occupancy)
    assert {r["metric"]["ring"] for r in occupancy} >= {"trades", "tops", "bars"}
    # Records keep arriving: the counter grows between two scrapes.
    stack.wait_for('rate(aurum_records_total{rtype="mbo"}[10s]) > 0', timeout=30)


def test_latency_histograms(stack: Stack) -> None:
    """The native histograms arrive as valid Prometheus histograms that quantiles can be taken
    of. Every chunk read from the socket is observed; a signal only at a bar close that
    produces one, so gateway-to-signal may still be empty."""
    for key in ("socket_to_processed", "gateway_to_signal"):
        buckets = stack.query(f"aurum_{key}_seconds_bucket")
        assert len(buckets) > 2, key
        by_le = sorted((float(b["metric"]["le"]), float(b["value"][1])) for b in buckets)
        assert [n for _, n in by_le] == sorted(n for _, n in by_le), f"{key} buckets not cumulative"
        count = stack.value(f"aurum_{key}_seconds_count")
        assert by_le[-1] == (float("inf"), count)
        assert stack.value(f"aurum_{key}_seconds_sum") >= 0
        q = stack.query(f"histogram_quantile(0.99, sum by (le) (rate(aurum_{key}_seconds_bucket[1m])))")
        assert len(q) == 1  # NaN without observations in the window, else seconds
    assert stack.value("aurum_socket_to_processed_seconds_count") > 0
    # The window reaches back to the daemon's start, so it holds observations whatever the pace.
    p99 = stack.value("histogram_quantile(0.99, "
                      "sum by (le) (rate(aurum_socket_to_processed_seconds_bucket[5m])))")
    assert 0 < p99 <= 10, "socket-to-processed p99 out of the histogram's range"


def test_rule_groups_load_and_evaluate(stack: Stack) -> None:
    want = {g["name"]: {r["alert"] for r in g["rules"]} for g in ma.load_yaml(ma.ALERTS)["groups"]}
    deadline = time.monotonic() + 60
    while True:
        groups = stack.api("rules", type="alert")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        evaluated = rules and all(not r["lastEvaluation"].startswith("0001") for r in rules)
        if evaluated or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {g["name"]: {r["name"] for r in g["rules"]} for g in groups} == want
    for g in groups:
        assert g["file"] == str(ma.ALERTS)
        for r in g["rules"]:
            assert r["health"] == "ok" and not r.get("lastError"), r
            assert not r["lastEvaluation"].startswith("0001"), f"{r['name']} never evaluated"


def test_no_alert_fires_on_a_healthy_daemon(stack: Stack) -> None:
    """Firing is never acceptable here; pending may be seen briefly after start-up (the feed is
    "down" until the gateway answers) and must clear."""
    deadline = time.monotonic() + 30
    while True:
        alerts = stack.api("alerts")["alerts"]
        assert not [a for a in alerts if a["state"] == "firing"], alerts
        if not alerts:
            break
        assert time.monotonic() < deadline, f"alerts still pending on a healthy daemon: {alerts}"
        time.sleep(1)


def test_alert_expressions_run_on_real_series(stack: Stack) -> None:
    """Each rule's expression is empty now (quiet) and the series it reads exist, so the quiet is
    a comparison that was made, not a selector that matched nothing."""
    missing = set()
    for rule in ma.alert_rules():
        assert stack.query(rule["expr"]) == [], rule["alert"]
        for sel in ma.selectors(rule["expr"]):
            if not stack.query(f"count({sel.name})"):
                missing.add(sel.name)
    unexpected = missing - NOT_FED_YET - EMPTY_WHEN_HEALTHY
    assert not unexpected, f"alert rules read series Prometheus does not have: {unexpected}"


def test_every_dashboard_query_runs(stack: Stack) -> None:
    """Grafana's variables filled in as Grafana would (All instances); each query must be
    accepted by Prometheus, and return data unless it reads a series not fed yet."""
    empty = []
    for where, expr in ma.dashboard_exprs(ma.dashboard()):
        promql = ma.grafana_to_promql(expr).replace("[5m]", "[1m]")
        if not stack.query(promql):
            names = {s.name for s in ma.selectors(promql)}
            if not names & (NOT_FED_YET | EMPTY_WHEN_HEALTHY):
                empty.append(f"{where}: {expr}")
    assert not empty, "dashboard queries with no data on a live daemon:\n" + "\n".join(empty)
