"""``aurum doctor``: one line per check of what the daemon needs, before it needs it.

Checks, in order: the config file, the API key (found, well-formed; shown masked), account
access through the official ``databento`` Historical client (the dataset list must hold
GLBX.MDP3), the live gateway (TCP connect and its greeting line), the shared-memory
directory and segment permissions, and whether its filesystem has room for the segment
``shm.capacity`` asks for. Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aurum.apikey import ApiKey, ApiKeyError, load_key
from aurum.cliargs import bounded
from aurum.config import Config, ConfigError, load_config
from aurum.consumer import RECORD_SIZE, RING_OFFSET, SHM_DIR

Check = tuple[bool, str]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("doctor", help="check config, key, Databento access, gateway and shared memory")
    p.add_argument("--config", default=None, help="TOML config (default: built-in defaults + AURUM_* variables)")
    p.add_argument("--historical", default=None, metavar="URL",
                   help="Databento Historical API host (default: the client's own, hist.databento.com)")
    p.add_argument("--timeout", type=_timeout, default=5.0, help="seconds per network check (default 5)")
    return p


_timeout = bounded(float, 0, 600, lo_open=True, expect="seconds in (0, 600]")


def check_account(key: ApiKey, historical: str | None, timeout: float) -> Check:
    import databento as db

    try:
        client = db.Historical(key.value, **({"gateway": historical} if historical else {}))
        datasets = client.metadata.list_datasets()
    except db.BentoClientError as e:
        code = getattr(e, "http_status", None)
        why = "key rejected" if code in (401, 403) else "request refused"
        return False, f"account: {why} by the Historical API (HTTP {code}) for key {key.masked}"
    except db.BentoServerError as e:
        return False, f"account: Historical API error (HTTP {getattr(e, 'http_status', '?')})"
    except Exception as e:  # noqa: BLE001 - network failures surface as many types
        text = str(e).replace(key.value, key.masked)
        return False, f"account: cannot reach the Historical API ({type(e).__name__}: {text[:160]})"
    if "GLBX.MDP3" not in datasets:
        return False, f"account: key {key.masked} works but GLBX.MDP3 is not among its {len(datasets)} datasets"
    return True, f"account: key {key.masked} can see GLBX.MDP3 ({len(datasets)} datasets)"


def check_gateway(host: str, port: int, timeout: float) -> Check:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            line = s.makefile("rb").readline(4096)
    except OSError as e:
        return False, f"gateway: cannot connect to {host}:{port} ({e.strerror or e})"
    if not line.startswith(b"lsg_version="):
        return False, f"gateway: {host}:{port} answered, but not with a Databento greeting ({line[:40]!r})"
    return True, f"gateway: {host}:{port} reachable, {line.decode(errors='replace').strip()}"


def check_shm(cfg: Config) -> Check:
    d = Path("/dev/shm")
    if not d.is_dir() or not os.access(d, os.W_OK):
        return False, f"shared memory: {d} is missing or not writable by this user"
    seg = d / cfg.shm.name
    if not seg.exists():
        return True, f"shared memory: {d} writable; {seg.name} will be created with mode {cfg.shm.mode:04o}"
    st = seg.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid():
        return False, f"shared memory: {seg} belongs to uid {st.st_uid}, not this user ({os.getuid()})"
    if mode != cfg.shm.mode:
        return False, f"shared memory: {seg} has mode {mode:04o}, config says {cfg.shm.mode:04o}"
    return True, f"shared memory: {seg} exists with mode {mode:04o}"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def check_shm_space(cfg: Config) -> Check:
    """The writer reserves the whole segment when it starts; a tmpfs too small for it (Docker's
    /dev/shm is 64 MiB by default) makes the daemon refuse to start."""
    d = Path(SHM_DIR)
    need = RING_OFFSET + cfg.shm.capacity * RECORD_SIZE
    try:
        vfs = os.statvfs(d)
    except OSError as e:
        return False, f"shared memory space: cannot read the free space of {d} ({e.strerror or e})"
    free = vfs.f_bavail * vfs.f_frsize
    have = 0
    try:
        st = (d / cfg.shm.name).stat()
        if st.st_size == need:  # a restart re-initialises it in place: that space is already ours
            have = min(need, st.st_blocks * 512)
    except OSError:
        pass
    text = (f"shared memory space: {d} has {_mib(free)} free, the segment needs {_mib(need)} "
            f"(shm.capacity {cfg.shm.capacity})" + (f", {_mib(have)} of it already allocated" if have else ""))
    if need - have > free:
        return False, f"{text}; enlarge {d} (docker --shm-size) or lower shm.capacity"
    return True, text


def run_checks(config: str | None, historical: str | None, timeout: float,
               out: Callable[[str], object] = print) -> bool:
    ok_all = True

    def say(result: Check) -> bool:
        nonlocal ok_all
        ok, text = result
        ok_all &= ok
        out(f"{'ok  ' if ok else 'FAIL'} {text}")
        return ok

    try:
        cfg = load_config(config)
        say((True, f"config: {cfg.source}"))
    except ConfigError as e:
        say((False, f"config: {e}"))
        return False
    try:
        key: ApiKey | None = load_key(cfg.feed.key_file)
        say((True, f"key: {key.masked} from {key.source}"))
    except ApiKeyError as e:
        key = None
        say((False, f"key: {e}"))
    if key is not None:
        say(check_account(key, historical, timeout))
    say(check_gateway(cfg.feed.gateway, cfg.feed.port, timeout))
    say(check_shm(cfg))
    say(check_shm_space(cfg))
    return ok_all


def run(args: argparse.Namespace) -> int:
    return 0 if run_checks(args.config, args.historical, args.timeout) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aurum doctor")
    sub = ap.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(ap.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)]))


__all__ = ["add_parser", "check_account", "check_gateway", "check_shm", "check_shm_space", "run", "run_checks"]
