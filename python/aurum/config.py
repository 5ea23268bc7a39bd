"""The daemon's configuration: a TOML file (example: ``daemon/aurum.toml``) with environment
overrides, ``AURUM_<SECTION>_<KEY>`` (e.g. ``AURUM_METRICS_PORT=9200``).

Every key has a typed default below; a file may set any subset. A wrong key, a wrong type or
an out-of-range value raises ``ConfigError`` with one line that names the file (or the
variable) and the key. Engine thresholds (``[engines.*]``) are checked by the native pipeline's
own rules (``_native.check_engine_config``) at load, with the same one-line errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config problem: the message names the file or variable and the key."""


@dataclass
class FeedConfig:
    gateway: str = "glbx-mdp3.lsg.databento.com"
    port: int = 13000
    dataset: str = "GLBX.MDP3"
    symbols: list[str] = field(default_factory=lambda: ["GC.c.0"])
    stype_in: str = "continuous"  # raw_symbol | parent | continuous
    schemas: list[str] = field(default_factory=lambda: ["mbo", "trades"])
    snapshot: bool = True
    heartbeat_interval_s: int = 30
    connect_attempts: int = 3  # then fall back to Yahoo
    retry_interval_s: float = 30.0  # after giving up, how often Databento is tried again
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    key_file: str | None = None
    # "wall": bars close and staleness is judged on the wall clock (a live market).
    # "data": on the records' own timestamps only (a replayed or simulated session served
    # over the live protocol, whose times are not today's).
    clock: str = "wall"


@dataclass
class FallbackConfig:
    enabled: bool = True
    symbol: str = "GC=F"
    poll_s: float = 60.0
    cache_s: float = 15.0
    # Never used: Databento is retried every feed.retry_interval_s. Accepted (with a warning)
    # so configs written from the old example still load.
    retry_databento_s: float = 60.0


@dataclass
class ShmConfig:
    name: str = "aurum-signals"
    capacity: int = 1024
    mode: int = 0o600


@dataclass
class MetricsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9109


@dataclass
class PersistenceConfig:
    checkpoint: str = "/var/lib/aurum/iceberg-memory.bin"
    checkpoint_every_s: float = 60.0
    journal_dir: str | None = None
    journal_rotate_mb: int = 256
    # Iceberg Memory rows last seen this long before the checkpoint's newest are left out when
    # it is restored (0: keep all); its tables have a fixed size (see [engines] *_capacity).
    memory_retention_days: float = 7.0


@dataclass
class SignalsConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"qmo": 0.35, "imo": 0.25, "gann": 0.15, "astro": 0.05,
                                                               "cycle": 0.20})
    enter: float = 0.35
    exit: float = 0.10
    min_confidence: float = 0.25
    cooldown_bars: int = 3
    bar_interval_s: float = 60.0
    min_stop_ticks: int = 2  # a stop is never nearer the entry than this many ticks
    # Calendar spreads (a parent subscription such as GC.FUT carries them) get no signals
    # unless this is set: their prices are leg differences (aurum.decision.scope).
    include_spreads: bool = False


@dataclass
class ApiConfig:
    """``aurum api``: the HTTP/WebSocket service, a separate process that only reads the
    shared-memory segment ``shm.name``."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer token required on every data endpoint and the WebSocket when set; normally from
    # $AURUM_API_TOKEN rather than the file. Never logged.
    token: str | None = None
    stale_after_s: float = 5.0  # heartbeat or state older than this: daemon down / data stale
    poll_interval_s: float = 0.05  # the one poller feeding every WebSocket client: at most this long between reads
    # ...and woken at each publication (the segment's notify futex), so streamed signals are
    # not up to poll_interval_s late. Off: the timer alone (reads then happen only on it).
    wake_on_publish: bool = True
    ws_queue: int = 256  # messages buffered per WebSocket client before the oldest are dropped
    # Host names clients reach the API by, besides the loopback names and `host`: any other
    # Host header is refused (DNS rebinding). "*.example.com" for a domain, "*" for any.
    allowed_hosts: list[str] = field(default_factory=list)


@dataclass
class LogConfig:
    level: str = "INFO"


@dataclass
class Config:
    feed: FeedConfig = field(default_factory=FeedConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    shm: ShmConfig = field(default_factory=ShmConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    # GC's tick (0.10 USD, fixed point 1e-9) for the footprint's diagonal and stacked
    # imbalances: left at 0, the engine infers it from the first prints, and prints two ticks
    # apart at the start of a stream look adjacent.
    engines: dict[str, Any] = field(default_factory=lambda: {"flow": {"tick": 100_000_000}})
    source: str = "<defaults>"
    # Where each key set from outside came from ("section.key" -> file or $VARIABLE), so an
    # error names the place the bad value was written.
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


RANGES: dict[str, tuple[float, float]] = {
    "feed.port": (1, 65535), "metrics.port": (0, 65535),  # 0: any free port (tests, demo)
    "feed.heartbeat_interval_s": (5, 1800),  # what the gateway accepts (databento.md §1.5)
    "feed.connect_attempts": (1, 100), "feed.retry_interval_s": (0.1, 3600), "shm.capacity": (2, 1 << 20), "shm.mode": (0, 0o777),
    "signals.enter": (0, 1), "signals.exit": (0, 1), "signals.min_confidence": (0, 1),
    "signals.cooldown_bars": (0, 10_000), "signals.min_stop_ticks": (1, 10_000), "signals.bar_interval_s": (1, 86_400), "fallback.poll_s": (1, 3600),
    "fallback.cache_s": (0, 3600), "persistence.checkpoint_every_s": (1, 86_400),
    "api.port": (0, 65535), "api.stale_after_s": (0.5, 3600), "api.poll_interval_s": (0.005, 5),
    "api.ws_queue": (1, 100_000),
    "feed.backoff_initial_s": (0.01, 3600), "feed.backoff_max_s": (0.01, 86_400),
    "persistence.journal_rotate_mb": (1, 100_000), "persistence.memory_retention_days": (0, 3650),
}
PILLARS = ("qmo", "imo", "gann", "astro", "cycle")
CHOICES: dict[str, tuple[str, ...]] = {
    "feed.stype_in": ("raw_symbol", "parent", "continuous"),
    "feed.clock": ("wall", "data"),
    "log.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}
SCHEMAS = ("mbo", "mbp-10", "trades")
# URL-safe, so the token also fits a WebSocket subprotocol and a query string unescaped.
API_TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def _coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of ``default`` (TOML values, or strings from the environment)."""
    kind = type(default)
    if isinstance(value, str) and kind is not str and default is not None:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                return text.lower() in ("1", "true", "yes", "on")
            if kind is int and where.endswith(".mode"):
                # Permission bits are octal however they are written: 0640, 0o640, 640.
                return int(text.lower().removeprefix("0o"), 8)
            if kind is int:
                return int(text, 0)
            if kind is float:
                return float(text)
            if kind is list:
                return [x.strip() for x in text.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    if default is None:
        # The optional keys (key_file, journal_dir, api.token) are all text.
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool) or kind is not bool and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is list and not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if kind is dict:
        bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
        if bad:
            raise ConfigError(f"{where}: expected numbers, got {bad!r}")
    return value


def _apply(cfg: Config, data: dict[str, Any], src: str) -> None:
    for section, values in data.items():
        if section == "engines":
            if not isinstance(values, dict):
                raise ConfigError(f"{src}: [engines] must be a table")
            for name, table in values.items():  # key by key within a table: [engines.flow] keeps tick
                base = cfg.engines.get(name)
                both = isinstance(base, dict) and isinstance(table, dict)
                cfg.engines = {**cfg.engines, name: {**base, **table} if both else table}
                cfg.origins[f"engines.{name}"] = src
            continue
        target = getattr(cfg, section, None)
        if target is None or not dataclasses.is_dataclass(target):
            raise ConfigError(f"{src}: unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{src}: [{section}] must be a table")
        names = {f.name for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"{src}: unknown key {section}.{key}; expected one of {', '.join(sorted(names))}")
            setattr(target, key, _coerce(value, getattr(target, key), f"{src}: {section}.{key}"))
            cfg.origins[f"{section}.{key}"] = src


# A bare decimal TOML integer: `mode = 640` means 0o1200, never what was meant.
_DECIMAL_MODE = re.compile(r"^\s*mode\s*=\s*([1-9][0-9_]*)\s*(#.*)?$", re.MULTILINE)


def _check_mode_literal(text: str, src: str) -> None:
    # Only the [shm] table's own lines (tomllib keeps no trace of how a number was written).
    shm = re.search(r"^\s*\[shm\]\s*(#.*)?$(.*?)(?=^\s*\[|\Z)", text, re.MULTILINE | re.DOTALL)
    m = _DECIMAL_MODE.search(shm.group(2)) if shm else None
    if m:
        v = int(m.group(1).replace("_", ""))
        raise ConfigError(f"{src}: shm.mode was written as the decimal number {m.group(1)} (= {oct(v)}); permission "
                          f"bits are octal: write mode = 0o{m.group(1)} or mode = \"0{m.group(1)}\"")


def _validate(cfg: Config) -> None:
    def at(*keys: str) -> str:
        """The file or variable that set the first of ``keys`` set from outside."""
        return next((cfg.origins[k] for k in keys if k in cfg.origins), cfg.source)

    for dotted, (lo, hi) in RANGES.items():
        sec, key = dotted.split(".")
        v = getattr(getattr(cfg, sec), key)
        if not lo <= v <= hi:
            raise ConfigError(f"{at(dotted)}: {dotted} was {v}, expected {lo:g}..{hi:g}")
    for dotted, opts in CHOICES.items():
        sec, key = dotted.split(".")
        v = getattr(getattr(cfg, sec), key)
        if v not in opts:
            raise ConfigError(f"{at(dotted)}: {dotted} was {v!r}, expected one of {', '.join(opts)}")
    if not cfg.feed.symbols:
        raise ConfigError(f"{at('feed.symbols')}: feed.symbols is empty; expected at least one symbol")
    bad = [s for s in cfg.feed.schemas if s not in SCHEMAS]
    if bad or not cfg.feed.schemas:
        raise ConfigError(f"{at('feed.schemas')}: feed.schemas has {bad or 'nothing'}; expected some of {', '.join(SCHEMAS)}")
    if cfg.feed.backoff_max_s < cfg.feed.backoff_initial_s:
        raise ConfigError(f"{at('feed.backoff_max_s', 'feed.backoff_initial_s')}: feed.backoff_max_s "
                          f"({cfg.feed.backoff_max_s}) is below feed.backoff_initial_s ({cfg.feed.backoff_initial_s})")
    name = cfg.shm.name
    if not name or len(name) > 255 or "/" in name or "\0" in name or name.startswith("."):
        raise ConfigError(f"{at('shm.name')}: shm.name was {name!r}, expected a plain file name (no '/', not "
                          "starting with '.'): the segment is /dev/shm/<name>")
    from aurum import _native  # the engines' own checks, so a bad table is refused here, with its file

    try:
        _native.check_engine_config(cfg.engines)
    except (ValueError, TypeError) as e:
        # The table (or top-level key) the message names, for the file or variable that set it.
        named = [f"engines.{w}" for w in re.findall(r"\b([a-z_]+)(?:\.[a-z_]+)?\b", str(e)) if f"engines.{w}" in cfg.origins]
        where = at(*named, *(k for k in cfg.origins if k.startswith("engines.")))
        raise ConfigError(f"{where}: [engines] {e}") from None
    if cfg.shm.capacity & (cfg.shm.capacity - 1):
        raise ConfigError(f"{at('shm.capacity')}: shm.capacity was {cfg.shm.capacity}, expected a power of two")
    tok = cfg.api.token
    if tok is not None and not (isinstance(tok, str) and API_TOKEN_RE.fullmatch(tok)):
        # The token itself is never echoed, not even a wrong one.
        raise ConfigError(f"{at('api.token')}: api.token must be 16-256 characters of A-Z a-z 0-9 . _ ~ - "
                          "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    from aurum.api.hosts import trusted_hosts  # no web stack: hosts.py is plain Python

    try:
        trusted_hosts(None, cfg.api.allowed_hosts)
    except ValueError as e:
        raise ConfigError(f"{at('api.allowed_hosts')}: {e}") from None
    unknown = sorted(set(cfg.signals.weights) - set(PILLARS))
    if unknown:
        raise ConfigError(f"{at('signals.weights')}: signals.weights has {', '.join(unknown)}; "
                          f"expected some of {', '.join(PILLARS)}")
    if any(w < 0 for w in cfg.signals.weights.values()) or not sum(cfg.signals.weights.values()) > 0:
        raise ConfigError(f"{at('signals.weights')}: signals.weights must be >= 0 with a positive sum, "
                          f"got {cfg.signals.weights}")
    if not cfg.signals.exit < cfg.signals.enter:
        raise ConfigError(f"{at('signals.exit', 'signals.enter')}: signals.exit ({cfg.signals.exit}) must be below "
                          f"signals.enter ({cfg.signals.enter})")
    if "fallback.retry_databento_s" in cfg.origins:
        cfg.warnings.append(f"{cfg.origins['fallback.retry_databento_s']}: fallback.retry_databento_s is not used; "
                            f"Databento is retried every feed.retry_interval_s ({cfg.feed.retry_interval_s:g} s)")


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults, then the TOML file (if given), then ``AURUM_*`` variables; validated."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        cfg.source = str(p)
        try:
            data = tomllib.loads(p.read_text())
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config ({e.strerror or e})") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); TOML files are UTF-8") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        if isinstance(data.get("shm"), dict) and isinstance(data["shm"].get("mode"), int):
            _check_mode_literal(p.read_text(), str(p))
        _apply(cfg, data, str(p))
    env = os.environ if environ is None else environ
    sections = [f.name for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))]
    for name, value in sorted(env.items()):
        if not name.startswith("AURUM_") or name.count("_") < 2:
            continue
        _, section, key = name.split("_", 2)
        section, key = section.lower(), key.lower()
        if section == "engines":
            _apply(cfg, {"engines": _engine_override(key, value)}, f"${name}")
            continue
        if not dataclasses.is_dataclass(getattr(cfg, section, None)):
            # Other AURUM_ variables (AURUM_SHARED_DATA, AURUM_DEBUG_BUILD) are not config, but
            # a near miss of a section is a typo that would otherwise change nothing, silently.
            near = difflib.get_close_matches(section, sections, n=1, cutoff=0.75)
            if near:
                cfg.warnings.append(f"${name} is not a config variable and is ignored (no section [{section}]; "
                                    f"did you mean AURUM_{near[0].upper()}_{key.upper()}?)")
            continue
        _apply(cfg, {section: {key: value}}, f"${name}")
    _validate(cfg)
    return cfg


ENGINE_TABLES = ("iceberg", "absorption", "sweep", "flow", "pressure", "protect")


def _engine_override(key: str, value: str) -> dict[str, Any]:
    """``AURUM_ENGINES_<TABLE>_<KEY>`` (``AURUM_ENGINES_FLOW_TICK``) or a top-level
    ``AURUM_ENGINES_<KEY>`` (``AURUM_ENGINES_DEPTH_SAMPLE_NS``) as an ``[engines]`` fragment.
    The value is read as an integer, a number or true/false; the native check judges it."""
    v: Any
    low = value.strip().lower()
    if low in ("true", "false"):
        v = low == "true"
    else:
        try:
            v = int(value)
        except ValueError:
            try:
                v = float(value)
            except ValueError:
                v = value  # refused by the native check, naming the key
    table, _, rest = key.partition("_")
    if table in ENGINE_TABLES and rest:
        return {table: {rest: v}}
    return {key: v}


__all__ = ["Config", "ConfigError", "load_config"]
