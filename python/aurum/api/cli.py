"""``aurum api``: serve the HTTP API, the WebSocket stream and the status page with uvicorn on
uvloop, in its own process, reading only the daemon's shared memory.

Settings: the ``[api]`` and ``[shm]`` sections of ``--config`` (``daemon/aurum.toml``), then
``AURUM_API_*`` / ``AURUM_SHM_NAME`` variables, then the flags. Prints
``aurum api: listening on http://HOST:PORT`` once the socket is bound (``--port 0`` picks a
free port, as the tests do).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("api", help="HTTP/WebSocket API and status page over the daemon's shared memory",
                              description="Serve /api/v1 (market, zones, signal(s), health, stream) and the status "
                                          "page at /, reading only /dev/shm/<shm.name>.")
    p.add_argument("--config", default=None, help="TOML config ([api] and [shm] sections; see daemon/aurum.toml)")
    p.add_argument("--host", default=None, help="bind address (default api.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default api.port, 8000; 0 = any free port)")
    p.add_argument("--shm-name", default=None, help="segment in /dev/shm (default shm.name, aurum-signals)")
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                   help="default: log.level")
    return p


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    from aurum.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"aurum api: {e}", file=sys.stderr)
        return 2
    a = cfg.api
    host = args.host if args.host is not None else a.host
    port = args.port if args.port is not None else a.port
    shm_name = args.shm_name if args.shm_name is not None else cfg.shm.name
    level = (args.log_level or cfg.log.level).lower()
    if not 0 <= port <= 65535:
        print(f"aurum api: --port was {port}, expected 0..65535", file=sys.stderr)
        return 2

    import uvicorn

    from aurum.api import auth
    from aurum.api.app import create_app

    try:
        hosts = auth.trusted_hosts(host, a.allowed_hosts)
        app = create_app(shm_name, token=a.token, stale_after_s=a.stale_after_s, poll_interval_s=a.poll_interval_s,
                         ws_queue=a.ws_queue, wake_on_publish=a.wake_on_publish, allowed_hosts=hosts)
    except ValueError as e:  # a bad segment name or allowed host
        print(f"aurum api: {e}", file=sys.stderr)
        return 2
    try:
        sock = _bind(host, port)
    except OSError as e:
        print(f"aurum api: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(app, loop="uvloop", log_level=level, timeout_graceful_shutdown=2,
                            server_header=False, proxy_headers=False)
    auth.install_log_filter(a.token)  # after uvicorn configured its loggers
    log = logging.getLogger("aurum.api")
    if not _is_loopback(host) and a.token is None:
        log.warning("listening on %s without a token: anyone who can reach it can read the signals "
                    "(set AURUM_API_TOKEN)", host)
    if not _is_loopback(host):
        log.info("answering requests for Host %s only (api.allowed_hosts adds the names clients use)",
                 ", ".join(hosts))
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    print(f"aurum api: listening on http://{shown}:{bound[1]} (segment /dev/shm/{shm_name}, "
          f"token {'required' if a.token else 'off'})", flush=True)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return 130
    finally:
        sock.close()
    return 0


__all__ = ["add_parser", "run"]
