"""The ``Host`` names ``aurum api`` answers (its defence against DNS rebinding), without
FastAPI: the daemon's config check uses it too, and must not load the web stack."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def _host_pattern(name: str) -> str:
    """One allowlist entry as Starlette's TrustedHostMiddleware compares it: lower case, IPv6
    in brackets, no port (any port is accepted)."""
    n = name.strip().lower()
    if n == "*":
        return n
    bare = n[1:-1] if n.startswith("[") and n.endswith("]") else n
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST_NAME.fullmatch(n) or len(n) > 253:
            raise ValueError(f"api.allowed_hosts: {name!r} is not a host name or IP address "
                             "(no scheme, port or path; '*.example.com' for a domain, '*' for any)") from None
        return n
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def trusted_hosts(bind_host: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The ``Host`` names the API answers: the loopback names, the address it binds (unless a
    wildcard such as 0.0.0.0, which no client puts in Host) and ``extra`` (``api.allowed_hosts``:
    the names clients reach it by). Raises ValueError on an entry that is not a host name."""
    hosts = list(LOOPBACK_HOSTS)
    names = list(extra)
    if bind_host:
        try:
            wildcard = ipaddress.ip_address(bind_host.strip("[]")).is_unspecified
        except ValueError:
            wildcard = False
        if not wildcard:
            names.insert(0, bind_host)
    for n in names:
        p = _host_pattern(n)
        if p not in hosts:
            hosts.append(p)
    return hosts


__all__ = ["LOOPBACK_HOSTS", "trusted_hosts"]
