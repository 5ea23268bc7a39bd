"""Daemon config (TOML + AURUM_* overrides) and the API key's sources, checks and masking.
Keys are built at run time; no key literal lives in the repository."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from aurum import _native
from aurum.apikey import ApiKeyError, load_key, mask_key
from aurum.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "daemon" / "aurum.toml"


def fake_key(n: int = 29) -> str:
    rng = random.Random()
    return "db-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def test_example_config_loads_and_equals_the_defaults() -> None:
    cfg = load_config(EXAMPLE, environ={})
    default = load_config(None, environ={})
    for section in ("feed", "fallback", "shm", "metrics", "persistence", "signals", "log"):
        assert getattr(cfg, section) == getattr(default, section), section
    assert cfg.shm.mode == 0o600 and cfg.metrics.host == "127.0.0.1"
    # Its engine section is accepted by the native pipeline as it stands.
    _native.Pipeline(engine_config=cfg.engines)
    assert cfg.engines["flow"] == default.engines["flow"] == {"tick": 100_000_000}


def test_engine_tables_merge_key_by_key(tmp_path: Path) -> None:
    """[engines.flow] with other keys keeps the default GC tick; a file can still set it."""
    p = tmp_path / "a.toml"
    p.write_text("[engines.flow]\nimbalance_ratio = 4.0\n[engines.absorption]\nmin_volume = 200\n")
    cfg = load_config(p, environ={})
    assert cfg.engines["flow"] == {"tick": 100_000_000, "imbalance_ratio": 4.0}
    assert cfg.engines["absorption"] == {"min_volume": 200}
    p.write_text("[engines.flow]\ntick = 0\n")
    assert load_config(p, environ={}).engines["flow"] == {"tick": 0}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text("[metrics]\nport = 9200\n[feed]\nschemas = ['mbo']\n")
    cfg = load_config(p, environ={"AURUM_METRICS_PORT": "9300", "AURUM_FEED_SCHEMAS": "mbo,mbp-10",
                                  "AURUM_SHM_MODE": "0o640", "AURUM_SHARED_DATA": "/elsewhere"})
    assert cfg.metrics.port == 9300 and cfg.feed.schemas == ["mbo", "mbp-10"] and cfg.shm.mode == 0o640
    for text in ("0640", "640", "0o640"):  # permission bits are octal however written
        assert load_config(p, environ={"AURUM_SHM_MODE": text}).shm.mode == 0o640
    with pytest.raises(ConfigError, match=r"AURUM_SHM_MODE.*shm\.mode: expected int"):
        load_config(p, environ={"AURUM_SHM_MODE": "0689"})


@pytest.mark.parametrize("text, env, pattern", [
    ("[metrics]\nport = 'x'\n", {}, r"a\.toml: metrics\.port: expected int"),
    ("[metrics]\nprot = 1\n", {}, r"a\.toml: unknown key metrics\.prot"),
    ("[metric]\nport = 1\n", {}, r"a\.toml: unknown section \[metric\]"),
    ("[metrics]\nport = 70000\n", {}, r"a\.toml: metrics\.port was 70000"),
    # Past what the gateway (and LsgClient) accept: refused here, not as a traceback at connect.
    ("[feed]\nheartbeat_interval_s = 2000\n", {}, r"a\.toml: feed\.heartbeat_interval_s was 2000, expected 5\.\.1800"),
    ("[feed]\nschemas = ['mbo', 'ohlcv']\n", {}, r"feed\.schemas"),
    ("[shm]\ncapacity = 1000\n", {}, r"power of two"),
    ("[signals]\nenter = 0.1\nexit = 0.2\n", {}, r"signals\.exit"),
    ("not toml [", {}, r"a\.toml: not valid TOML"),
    ("", {"AURUM_METRICS_PORT": "abc"}, r"\$AURUM_METRICS_PORT: metrics\.port: expected int"),
    ("", {"AURUM_FEED_SNAPSHOT": "maybe"}, r"\$AURUM_FEED_SNAPSHOT"),
    ("", {"AURUM_FEED_SYMBOLS": ","}, r"feed\.symbols is empty"),
    # A range error names the variable that set the value, not the file.
    ("[feed]\nport = 13000\n", {"AURUM_FEED_PORT": "70000"}, r"^\$AURUM_FEED_PORT: feed\.port was 70000"),
    # Values that used to pass here and fail later as tracebacks naming neither key nor file.
    ("[feed]\nbackoff_initial_s = 0\n", {}, r"a\.toml: feed\.backoff_initial_s was 0\.0"),
    ("[feed]\nbackoff_initial_s = 5.0\nbackoff_max_s = 1.0\n", {}, r"a\.toml: feed\.backoff_max_s \(1\.0\) is below"),
    ("[persistence]\njournal_rotate_mb = 0\n", {}, r"a\.toml: persistence\.journal_rotate_mb was 0"),
    ("[feed]\nsymbols = [123]\n", {}, r"a\.toml: feed\.symbols: expected a list of strings"),
    ("[feed]\nkey_file = 5\n", {}, r"a\.toml: feed\.key_file: expected a string"),
    ("[signals]\nweights = {qmo = 'high'}\n", {}, r"a\.toml: signals\.weights: expected numbers"),
    ("[signals]\nweights = {qmx = 1.0}\n", {}, r"a\.toml: signals\.weights has qmx"),
    ("[signals]\nweights = {qmo = -1.0, imo = 0.5}\n", {}, r"signals\.weights must be >= 0"),
    # Permission bits written as a decimal TOML number: 440 would be 0o670 (group-writable).
    ("[shm]\nmode = 440\n", {}, r"a\.toml: shm\.mode was written as the decimal number 440 \(= 0o670\)"),
    ("[api]\nallowed_hosts = ['http://aurum.internal:8000']\n", {}, r"a\.toml: api\.allowed_hosts: 'http://aurum"),
    ("", {"AURUM_API_ALLOWED_HOSTS": "ok.internal,bad/path"}, r"\$AURUM_API_ALLOWED_HOSTS: api\.allowed_hosts: 'bad/path'"),
    # Refused by the native side at start, as a traceback, before these were checked at load.
    ("[shm]\nname = 'a/b'\n", {}, r"a\.toml: shm\.name was 'a/b', expected a plain file name"),
    ("", {"AURUM_SHM_NAME": ".hidden"}, r"^\$AURUM_SHM_NAME: shm\.name was '\.hidden'"),
    ("[engines.flow]\nbogus = 1\n", {}, r"a\.toml: \[engines\] unknown engine config key flow\.bogus; expected one of"),
    ("[engines.absorption]\nmin_volume = -5\n", {},
     r"a\.toml: \[engines\] engine config absorption\.min_volume was -5, expected a non-negative integer"),
    ("[engines]\ndepth_sample_ns = 5\n", {}, r"a\.toml: \[engines\] engine config depth_sample_ns was 5"),
    ("[signals]\nmin_stop_ticks = 0\n", {}, r"a\.toml: signals\.min_stop_ticks was 0"),
    ("[engines.flow]\ntick = -5\n", {}, r"a\.toml: \[engines\] engine config flow\.tick was -5, expected >= 0"),
    # The variable that set the bad value is named, not the file that set another engine key.
    ("[engines.flow]\ntick = 100000000\n", {"AURUM_ENGINES_ABSORPTION_MIN_VOLUME": "-5"},
     r"^\$AURUM_ENGINES_ABSORPTION_MIN_VOLUME: \[engines\] engine config absorption\.min_volume was -5"),
    ("", {"AURUM_ENGINES_FLOW_BOGUS": "1"}, r"^\$AURUM_ENGINES_FLOW_BOGUS: \[engines\] unknown engine config key flow\.bogus"),
    ("", {"AURUM_ENGINES_ICEBERG_ENABLED": "maybe"}, r"iceberg\.enabled was 'maybe', expected true or false"),
])
def test_bad_config_names_the_file_and_key(tmp_path: Path, text: str, env: dict[str, str], pattern: str) -> None:
    p = tmp_path / "a.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as e:
        load_config(p, environ=env)
    assert "\n" not in str(e.value)


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: cannot read config"):
        load_config(tmp_path / "nope.toml", environ={})


def test_key_sources_in_order_and_masked(tmp_path: Path) -> None:
    k1, k2, k3 = fake_key(), fake_key(), fake_key()
    kf = tmp_path / "key"
    kf.write_text(k2 + "\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# comment\nexport DATABENTO_API_KEY='{k3}'\n")
    assert load_key(kf, dotenv, environ={"DATABENTO_API_KEY": k1}).value == k1
    assert load_key(kf, dotenv, environ={}).value == k2
    got = load_key(None, dotenv, environ={})
    assert got.value == k3 and got.source == str(dotenv)
    assert k3 not in repr(got) and k3 not in str(got) and mask_key(k3) in repr(got)
    assert got.masked == k3[:8] + "***"


@pytest.mark.parametrize("bad", ["xx-" + "a" * 29, "db-short", "db-" + "a" * 30, "db-" + "a" * 28 + "!"])
def test_bad_keys_are_refused_without_leaking_them(bad: str) -> None:
    with pytest.raises(ApiKeyError) as e:
        load_key(None, None, environ={"DATABENTO_API_KEY": bad})
    assert bad not in str(e.value) and "$DATABENTO_API_KEY" in str(e.value)


def test_no_key_anywhere_says_where_to_put_one(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyError, match="no Databento API key"):
        load_key(None, tmp_path / ".env", environ={})
    with pytest.raises(ApiKeyError, match="missing-file"):
        load_key(tmp_path / "missing-file", None, environ={})


def test_octal_mode_spellings_and_the_unused_retry_key(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    for text in ("mode = 0o640", 'mode = "0640"', "mode = 0o640  # rw-r-----"):
        p.write_text(f"[shm]\n{text}\n[engines.absorption]\nmin_volume = 300\n")
        assert load_config(p, environ={}).shm.mode == 0o640, text
    p.write_text("[fallback]\nretry_databento_s = 60.0\n")
    cfg = load_config(p, environ={})
    assert len(cfg.warnings) == 1 and "fallback.retry_databento_s is not used" in cfg.warnings[0]
    assert load_config(EXAMPLE, environ={}).warnings == []


def test_api_allowed_hosts_from_file_and_environment(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text("[api]\nallowed_hosts = ['aurum.internal', '*.desk.example']\n")
    assert load_config(p, environ={}).api.allowed_hosts == ["aurum.internal", "*.desk.example"]
    cfg = load_config(p, environ={"AURUM_API_ALLOWED_HOSTS": "a.internal, 10.0.0.7"})
    assert cfg.api.allowed_hosts == ["a.internal", "10.0.0.7"]
    assert load_config(EXAMPLE, environ={}).api.allowed_hosts == []


def test_engine_thresholds_from_the_environment_and_near_miss_variables(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text("[engines.flow]\nimbalance_ratio = 2.5\n")
    cfg = load_config(p, environ={"AURUM_ENGINES_FLOW_TICK": "50000000", "AURUM_ENGINES_DEPTH_SAMPLE_NS": "20000000",
                                  "AURUM_ENGINES_ICEBERG_SYNTHETIC_ENABLED": "false", "AURUM_FEEDS_PORT": "1",
                                  "AURUM_SHARED_DATA": "/data"})
    # Key by key: the file's imbalance_ratio stays, the variable sets tick.
    assert cfg.engines["flow"] == {"tick": 50_000_000, "imbalance_ratio": 2.5}
    assert cfg.engines["depth_sample_ns"] == 20_000_000 and cfg.engines["iceberg"] == {"synthetic_enabled": False}
    assert cfg.feed.port == 13000
    assert cfg.warnings == ["$AURUM_FEEDS_PORT is not a config variable and is ignored (no section [feeds]; "
                            "did you mean AURUM_FEED_PORT?)"]
