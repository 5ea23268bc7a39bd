"""The monitoring assets in daemon/ as data, for the tests that keep them honest: the PromQL
in the Grafana dashboard and the alert rules, the metric names and labels the real collector
exports, and where promtool is.

PromQL is read with a small lexer rather than a full parser: enough to find every series
selector (metric name and label matchers) in an expression, which is what can drift from the
code. Syntax is promtool's job (see test_monitoring_assets.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "daemon" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "aurum-alerts.yml"
ALERT_TESTS = REPO / "tests" / "promtool" / "aurum-alerts.test.yml"
DASHBOARD = REPO / "daemon" / "grafana" / "aurum-dashboard.json"

# Series Prometheus makes itself: per target, and for alerting rules.
TARGET_LABELS = {"job", "instance"}
BUILTIN_SERIES = {"up": set(), "ALERTS": {"alertname", "alertstate", "severity"}}


def need_tool(name: str) -> str:
    """The tool's path; a skip without it, but a failure under CI (where .ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} not found: install Debian's prometheus package (.ci/run does when run as root)"
        if os.environ.get("CI"):
            pytest.fail(why + "; CI must run this test")
        pytest.skip(why)
    return path


def yaml_module() -> Any:
    try:
        import yaml
    except ImportError:
        why = "PyYAML is not installed (requirements-dev.txt; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return yaml


def load_yaml(path: Path) -> Any:
    return yaml_module().safe_load(path.read_text())


# --- the assets ----------------------------------------------------------------------------------

def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and the alert annotation."""
    out = [(f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
           for p in dashboard_panels(dash) for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["expr"]) for a in dash["annotations"]["list"] if "expr" in a]
    return out


def grafana_to_promql(expr: str) -> str:
    """Grafana's interval variables become a duration; any other variable sits in a label
    matcher's regex and becomes ``.*`` (what "All" means)."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# --- PromQL selectors ----------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>\d[\d.]*(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[{}()\[\],=<>+\-*/%^@])
""", re.VERBOSE)
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = LABEL_LISTS | {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"}
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile"}


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            text = m.group()
            out.append((m.lastgroup or "", text[1:-1] if m.lastgroup == "string" else text))
    return out


def _skip_group(toks: list[tuple[str, str]], i: int, open_: str, close: str) -> int:
    """Index after the bracket group opening at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        depth += (toks[j][1] == open_) - (toks[j][1] == close)
        if depth == 0:
            return j + 1
    raise ValueError(f"unbalanced {open_!r}")


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[list[tuple[str, str, str]], int]:
    """Parse ``{label op "value", ...}`` starting at the ``{`` at toks[i]."""
    out, i = [], i + 1
    while toks[i][1] != "}":
        (k1, label), (_, op), (k3, value) = toks[i:i + 3]
        if k1 != "ident" or op not in ("=", "!=", "=~", "!~") or k3 != "string":
            raise ValueError(f"bad label matcher near {label!r}")
        out.append((label, op, value))
        i += 3
        if toks[i][1] == ",":
            i += 1
    return out, i + 1


def selectors(expr: str) -> list[Selector]:
    """Every series selector in a PromQL expression."""
    toks, out, i = _tokens(expr), [], 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident":
            if text in LABEL_LISTS and nxt == "(":
                i = _skip_group(toks, i + 1, "(", ")")
            elif text in KEYWORDS or nxt == "(" or (text in AGGREGATORS and nxt in ("by", "without")):
                i += 1
            else:
                sel = Selector(text)
                i += 1
                if nxt == "{":
                    sel.matchers, i = _matchers(toks, i)
                out.append(sel)
        elif text == "{":  # a selector by labels only, e.g. {__name__="x"}
            matchers, i = _matchers(toks, i)
            names = [v for k, op, v in matchers if k == "__name__" and op == "="]
            if not names:
                raise ValueError(f"selector without a metric name in {expr!r}")
            out.append(Selector(names[0], [m for m in matchers if m[0] != "__name__"]))
        elif text == "[":  # range or subquery: durations only
            i = _skip_group(toks, i, "[", "]")
        else:
            i += 1
    return out


# --- what the collector exports ------------------------------------------------------------------

@dataclass
class Exported:
    """Series name -> {label: values seen}, from real scrapes of the collector."""
    series: dict[str, dict[str, set[str]]]
    families: dict[str, str]  # family name -> type

    def problems(self, where: str, expr: str) -> list[str]:
        """Why ``expr`` asks for something the collector does not export (empty if it does not)."""
        out = []
        for sel in selectors(grafana_to_promql(expr)):
            if sel.name in BUILTIN_SERIES:
                labels = {k: set() for k in BUILTIN_SERIES[sel.name] | TARGET_LABELS}
            elif sel.name in self.series:
                labels = self.series[sel.name]
            else:
                out.append(f"{where}: metric {sel.name} is not exported (in {expr!r})")
                continue
            for label, op, value in sel.matchers:
                if label in TARGET_LABELS or (label == "le" and sel.name.endswith("_bucket")):
                    continue
                if label not in labels:
                    out.append(f"{where}: {sel.name} has no label {label!r} (in {expr!r})")
                elif labels[label] and op in ("=", "=~"):
                    # A regex of plain alternatives must name only real values, each of them:
                    # `state=~"recovering|stail"` would still match something.
                    alts = ([value] if op == "=" else
                            value.split("|") if re.fullmatch(r"[\w|-]+", value) else None)
                    if alts is not None:
                        missing = [a for a in alts if a not in labels[label]]
                        if missing:
                            out.append(f"{where}: {sel.name}{{{label}}} is never {missing} "
                                       f"(exported: {sorted(labels[label])})")
                    elif not any(re.fullmatch(value, v) for v in labels[label]):
                        out.append(f"{where}: {sel.name}{{{label}=~{value!r}}} matches no exported value")
        return out


def exported_metrics(pipeline: Any) -> Exported:
    """Scrape the real collector twice on ``pipeline``: with every daemon-state key set (as the
    DaemonState docstring describes them; latency from the pipeline's own histograms), and with
    a malformed value so that the error counter has a series too."""
    from prometheus_client.parser import text_string_to_metric_families

    from aurum.metrics import make_registry, scrape

    full = {"feed_state": "live", "source": "databento", "reconnects": 1, "gaps": 1, "decode_errors": 0,
            "readers_lapped": 0, "signals": {"BUY": 1, "SELL": 1, "FLAT": 1}, "last_heartbeat_ns": 1,
            "latency": pipeline.latency(),  # the native histograms, as the daemon passes them
            "rings": {"shm_signals": (10, 1024)}, "gap_seconds": 0.5,
            "last_signal": {"confidence": 0.6, "direction": 0.4},
            "pillars": {p: (0.1, 0.5) for p in ("qmo", "imo", "gann", "astro", "cycle")}}
    series: dict[str, dict[str, set[str]]] = {}
    families: dict[str, str] = {}
    for state in (full, {**full, "reconnects": "many"}):
        text = scrape(make_registry(pipeline, lambda s=state: s)).decode()
        for fam in text_string_to_metric_families(text):
            families[fam.name] = fam.type
            for s in fam.samples:
                labels = series.setdefault(s.name, {})
                for k, v in s.labels.items():
                    labels.setdefault(k, set()).add(v)
    return Exported(series, families)
