"""The daemon's wiring without the network: a simulated session fed chunk by chunk reaches the
decision layer and real shared memory; checkpoints survive a restart; SIGHUP-style reloads
refuse bad files; systemd notifications arrive on a real datagram socket."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest
from conftest import simulated_mbo

from aurum import _native
from aurum.config import load_config
from aurum.consumer import ShmReader
from aurum.daemon import Daemon
from aurum.sdnotify import Notifier


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_mbo(tmp_path_factory.mktemp("d"), seed=21, records=600_000)


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    name = f"aurum-test-{uuid.uuid4().hex[:10]}"
    p = tmp_path / "aurum.toml"
    p.write_text(f'[shm]\nname = "{name}"\ncapacity = 256\n[persistence]\ncheckpoint = "{tmp_path / "mem.json"}"\n'
                 "[signals]\nbar_interval_s = 5.0\n")
    yield p
    Path("/dev/shm", name).unlink(missing_ok=True)


def feed(d: Daemon, path: Path) -> None:
    f = _native.DbnFile(str(path))
    while n := d.pipeline.feed_file(f, 1 << 16):
        d.on_chunk(n, 0, now_ns=d.pipeline.clock)


def test_signals_reach_shared_memory_and_memory_survives_restart(session: Path, cfg_file: Path) -> None:
    cfg = load_config(cfg_file, environ={})
    d = Daemon(cfg, None, config_path=str(cfg_file))
    reader = ShmReader(cfg.shm.name, from_start=True)
    feed(d, session)
    before = (sum(d.stats.signals.values()), d.pipeline.stats()["bars_closed"])
    d.shutdown()
    published = sum(d.stats.signals.values())
    assert published >= 4
    # The bar in progress stays open: no decision (and no signal) on part of a bar at SIGTERM.
    assert (published, d.pipeline.stats()["bars_closed"]) == before
    got, lost = reader.poll()
    assert lost == 0 and len(got) == published
    assert {g["action"] for g in got} <= {"BUY", "SELL", "FLAT", 0, 1, 2}
    st = reader.state()
    assert st is not None and st["bid"] > 0 and st["ask"] > st["bid"]
    # A clean stop clears the heartbeat: readers see the writer gone at once.
    assert not reader.writer_alive(5.0) and reader.heartbeat_age_s() is None
    # The checkpoint written at shutdown is restored by the next daemon.
    ckpt = Path(cfg.persistence.checkpoint)
    assert ckpt.exists() and d.stats.checkpoints == 1
    d2 = Daemon(cfg, None, config_path=str(cfg_file), shm_writer=d.shm)
    from aurum.engines import table_array

    assert len(table_array(d2.pipeline, "zones")) == len(table_array(d.pipeline, "zones")) > 0
    reader.close()


def test_tick_prefetches_tomorrows_astro_windows(session: Path, cfg_file: Path) -> None:
    """The first bar of a UTC day finds its astro windows computed by an earlier tick, not
    on its own bar-close path; a failing prefetch is recorded, and the tick still beats."""
    cfg = load_config(cfg_file, environ={})
    d = Daemon(cfg, None, config_path=str(cfg_file))
    astro = d.decision.providers["astro"]
    feed(d, session)
    day = d.pipeline.clock // 86_400_000_000_000
    misses = astro.windows.misses
    d.tick(d.pipeline.clock)
    assert astro.windows.misses == misses + 1  # tomorrow computed now...
    d.tick(d.pipeline.clock)
    assert astro.windows.misses == misses + 1  # ...once
    hits = astro.windows.hits
    first_bar = (day + 1) * 86_400_000_000_000 + 5_000_000_000
    astro(d.decision._core.window(next(iter(d.decision.last_score))), first_bar, 4100.0)
    assert astro.windows.misses == misses + 1 and astro.windows.hits == hits + 1  # found cached

    beats: list[str] = []
    d.notifier.watchdog = lambda: beats.append("beat")  # type: ignore[method-assign]
    d.decision.providers["astro"] = type("Broken", (), {"prefetch": lambda self, ts: 1 / 0})()
    d.tick(d.pipeline.clock)
    assert beats == ["beat"] and "ZeroDivisionError" in d.decision.provider_errors["astro"]
    d.decision.providers["astro"] = astro
    d.shutdown()


def test_corrupt_checkpoint_is_set_aside_not_lost(cfg_file: Path) -> None:
    cfg = load_config(cfg_file, environ={})
    ckpt = Path(cfg.persistence.checkpoint)
    ckpt.write_text("{broken")
    d = Daemon(cfg, None, config_path=str(cfg_file))
    assert not ckpt.exists() and ckpt.with_suffix(".json.bad").read_text() == "{broken"
    d.shm.close()


def test_reload_applies_good_files_and_refuses_bad_ones(cfg_file: Path) -> None:
    cfg = load_config(cfg_file, environ={})
    d = Daemon(cfg, None, config_path=str(cfg_file))
    base = cfg_file.read_text()
    cfg_file.write_text(base.replace("[signals]\n", "[signals]\nweights = { qmo = 1.0, imo = 0.0, gann = 0.0, astro = 0.0, cycle = 0.0 }\n"))
    assert d.reload() and d.decision.scorer.weights["qmo"] == 1.0 and d.decision.scorer.weights["imo"] == 0.0
    cfg_file.write_text(base.replace("[signals]\n", "[signals]\nweights = { qmo = -1.0 }\n"))
    assert not d.reload()
    assert d.decision.scorer.weights["qmo"] == 1.0  # the running weights stay
    d.shm.close()


def test_systemd_notifications_reach_a_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier(path)
    assert n.ready("streaming GC.c.0") and n.watchdog() and n.status("42 signals") and n.stopping()
    msgs = [srv.recv(1024).decode() for _ in range(4)]
    assert msgs == ["READY=1\nSTATUS=streaming GC.c.0", "WATCHDOG=1", "STATUS=42 signals", "STOPPING=1"]
    srv.close()
    assert not Notifier("").enabled and not Notifier("").ready()
    os.environ.pop("WATCHDOG_USEC", None)
    assert n.watchdog_interval_s() is None


def test_systemd_unit_has_the_required_settings() -> None:
    import configparser

    unit = Path(__file__).resolve().parents[1] / "daemon" / "aurumd.service"
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(unit)
    svc = cp["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "on-failure" and int(svc["WatchdogSec"]) > 0
    assert svc["RestartPreventExitStatus"] == "2"  # what main() returns for a bad config or key
    # A fixed system user: DynamicUser= would imply RemoveIPC=yes and delete the segment.
    assert svc["User"] == "aurum" and "DynamicUser" not in svc and svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["PrivateTmp"] == "yes"
    assert "aurumd" in svc["ExecStart"] and "kill -HUP" in svc["ExecReload"]
    # The config keys the unit sets through the environment exist.
    # Environment= repeats (configparser keeps only the last): read those lines directly.
    env = dict(line.split("=", 1)[1].split("=", 1) for line in unit.read_text().splitlines()
               if line.startswith("Environment="))
    cfg = load_config(None, environ={k: v for k, v in env.items() if k.startswith("AURUM_")})
    assert cfg.feed.key_file and cfg.persistence.checkpoint == "/var/lib/aurum/iceberg-memory.bin"
    assert cfg.shm.mode == 0o640
    sysusers = (unit.parent / "aurum.sysusers").read_text()
    assert any(line.split()[:2] == ["u", "aurum"] for line in sysusers.splitlines() if line.strip())


def test_fallback_switches_source_feeds_price_bars_and_comes_back(session: Path, cfg_file: Path) -> None:
    """Databento gives up -> open positions are closed with a veto, Yahoo prices (injected,
    no network) feed bars on their own instrument, the source shows in shared memory; on
    recovery the source is Databento again."""
    import asyncio

    from aurum.feeds.yahoo import FALLBACK_INSTRUMENT_ID

    cfg = load_config(cfg_file, environ={})
    calls: list[str] = []

    def fetch(symbol: str) -> tuple[float, int, int]:
        calls.append(symbol)
        return 4100.0 + 0.1 * len(calls), 10, 0

    d = Daemon(cfg, None, config_path=str(cfg_file), price_fetch=fetch)
    d.fallback.source.cache_s = 0.0  # a new price per poll in this test
    feed(d, session)
    reader = ShmReader(cfg.shm.name, from_start=True)
    before, _ = reader.poll()

    async def scenario() -> None:
        d._on_give_up()
        assert d.source == "yahoo" and d.fallback.active
        d.fallback.stop()  # drive the polls by hand, on a clock of our choosing
        t0 = 1_800_000_000_000_000_000
        for k in range(40):
            assert d.fallback.poll_once(t0 + k * 1_000_000_000)
        d.tick(t0 + 45 * 1_000_000_000)
        d._on_recovered()

    asyncio.run(scenario())
    assert calls and set(calls) == {"GC=F"}
    status = d.pipeline.engine_status()[FALLBACK_INSTRUMENT_ID]
    active = {name for name, on, _ in status if on}
    assert active == {"orderflow"}  # price only: no book, no icebergs
    assert FALLBACK_INSTRUMENT_ID in d.decision.last_score  # bars reached the decision layer
    sigs, _ = reader.poll()
    # Any position open on the live instrument was closed with a veto when the feed was lost.
    if d.decision._builders and before and before[-1]["action"] in ("BUY", "SELL", 1, 2):
        assert sigs and sigs[0]["action"] in ("FLAT", 0) and sigs[0]["veto"]
    assert d.source == "databento" and not d.fallback.active
    st = reader.state()
    assert st is not None and st["source"] in ("databento", 0)
    reader.close()
    d.shm.close()


def test_a_bad_config_exits_2_with_one_line_naming_file_and_key(tmp_path: Path) -> None:
    """Exit status 2 is what the unit's RestartPreventExitStatus keeps from restarting."""
    import subprocess
    import sys

    bad = tmp_path / "aurum.toml"
    bad.write_text("[feed]\nbackoff_initial_s = 0\n")
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "run", "--config", str(bad)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "DATABENTO_API_KEY": ""})
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "ERROR" in ln]
    assert len(lines) == 1 and str(bad) in lines[0] and "feed.backoff_initial_s" in lines[0]
    assert "Traceback" not in out.stderr


def test_a_metrics_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    import secrets
    import string
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        name = f"aurum-test-{uuid.uuid4().hex[:10]}"
        cfg = tmp_path / "aurum.toml"
        cfg.write_text(f'[feed]\ngateway = "127.0.0.1"\nport = 9\n[metrics]\nport = {port}\n[shm]\nname = "{name}"\n'
                       f'[persistence]\ncheckpoint = "{tmp_path / "m.bin"}"\n')
        key = "db-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(29))
        try:
            out = subprocess.run([sys.executable, "-m", "aurum.cli", "run", "--config", str(cfg)], capture_output=True,
                                 text=True, timeout=60, env={**os.environ, "DATABENTO_API_KEY": key})
        finally:
            Path("/dev/shm", name).unlink(missing_ok=True)
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and f"metrics endpoint 127.0.0.1:{port}" in errors[0] and "in use" in errors[0]
    assert "Traceback" not in out.stderr and key not in out.stderr


def test_reload_keeps_the_bar_length_and_says_so(session: Path, cfg_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = Daemon(load_config(cfg_file, environ={}), None, config_path=str(cfg_file))
    cfg_file.write_text(cfg_file.read_text().replace("bar_interval_s = 5.0", "bar_interval_s = 60.0\nenter = 0.5"))
    with caplog.at_level("WARNING"):
        assert d.reload()
    assert d.cfg.signals.bar_interval_s == 5.0 and d.cfg.signals.enter == 0.5
    assert any("signals.bar_interval_s changed" in r.getMessage() and "next start" in r.getMessage()
               for r in caplog.records)
    d.shm.close()


def test_unreadable_config_and_checkpoint_are_one_line_each(tmp_path: Path, cfg_file: Path) -> None:
    from aurum.config import ConfigError

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("[log]\n# caf\xe9\nlevel = 'INFO'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8 text \(byte \d+\)"):
        load_config(latin1, environ={})
    cfg = load_config(cfg_file, environ={})
    ckpt = Path(cfg.persistence.checkpoint)
    from aurum.memory import FORMAT, ICEBERG_DTYPE, ZONE_DTYPE

    ckpt.write_text('{"format": "%s", "record_sizes": {"iceberg": %d, "zone": %d}, "icebergs": null, "zones": []}'
                    % (FORMAT, ICEBERG_DTYPE.itemsize, ZONE_DTYPE.itemsize))
    d = Daemon(cfg, None, config_path=str(cfg_file))  # restores at start: a TypeError escaped before
    assert not ckpt.exists() and ckpt.with_suffix(ckpt.suffix + ".bad").exists()
    d.shm.close()


@pytest.mark.parametrize("hang", ["yahoo", "dns"])
def test_sigterm_stops_within_two_seconds_while_a_blocking_call_hangs(tmp_path: Path, hang: str) -> None:
    """A Yahoo request stuck in the network (yfinance waits 10 s a try) or a DNS lookup that
    never answers ran on executor threads that the loop and the interpreter wait for: SIGTERM
    took ~17 s, past systemd's TimeoutStopSec (which then kills the daemon unflushed). They
    now run on threads a stop abandons. Both hang for 60 s here; nothing touches the network."""
    import secrets
    import string
    import subprocess
    import sys
    import textwrap

    name = f"aurum-test-{uuid.uuid4().hex[:10]}"
    ckpt = tmp_path / "memory.bin"
    script = textwrap.dedent(f"""
        import os, signal, socket, sys, threading, time
        import aurum.feeds.yahoo as yahoo
        in_flight = threading.Event()

        def hanging(*args, **kwargs):
            in_flight.set()
            time.sleep(60)
            raise OSError("never")

        if {hang!r} == "yahoo":
            yahoo.yfinance_fetch = hanging
        else:
            socket.getaddrinfo = hanging

        def stop():
            if not in_flight.wait(30):
                print("the blocking call was never made", flush=True)
                os._exit(3)
            time.sleep(0.5)
            print("SIGTERM", time.monotonic(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop, daemon=True).start()
        from aurum import daemon
        rc = daemon.main(None)
        print("RC", rc, time.monotonic(), flush=True)
        sys.exit(rc)
    """)
    key = "db-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(29))
    env = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1" if hang == "yahoo" else "lsg.invalid",
           "AURUM_FEED_PORT": "1", "AURUM_FEED_CONNECT_ATTEMPTS": "1", "AURUM_FEED_BACKOFF_INITIAL_S": "0.05",
           "AURUM_FEED_BACKOFF_MAX_S": "0.1", "AURUM_SHM_NAME": name, "AURUM_METRICS_ENABLED": "false",
           "AURUM_PERSISTENCE_CHECKPOINT": str(ckpt)}
    import time

    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("SIGTERM"):
                t_term = time.monotonic()
                break
        else:
            raise AssertionError(f"no SIGTERM sent: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        rc = proc.wait(timeout=60)
        gone = time.monotonic() - t_term  # the whole exit, interpreter shutdown included
    finally:
        if proc.poll() is None:
            proc.kill()
        Path("/dev/shm", name).unlink(missing_ok=True)
    assert rc == 0 and ckpt.exists()
    assert gone < 3.0, f"the process took {gone:.1f} s to exit after SIGTERM"
