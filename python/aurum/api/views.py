"""Shared-memory dicts (``aurum.consumer``) -> the plain dicts the API serves (shapes in
``aurum.api.models``). Pure functions of their inputs, ``now_ns`` included, so HTTP and the
WebSocket stream give identical bodies."""

from __future__ import annotations

import math
import time
from typing import Any

from aurum.api.models import PILLARS

# The native zone codes (native/src/engines/records.rs), as in aurum.engines.ZONE_KINDS and
# ZONE_STATES; not imported from there so the API process never loads the native extension.
ZONE_KINDS = {1: "iceberg", 2: "absorption"}
ZONE_STATES = {1: "active", 2: "held", 3: "broken"}
ZONE_SIDES = {"B": "bid", "A": "ask"}
REASON_MAX = 111  # bytes of reason a signal slot holds (layout v2 and v3)
# The writer cuts at a UTF-8 character boundary, so a cut reason may end up to 3 bytes short
# of REASON_MAX (the next character, up to 4 bytes, did not fit). Any reason this long
# filled the slot, and its last part was most likely cut.
REASON_FULL = REASON_MAX - 3

# Keys of a decoded signal that are shown differently (or are transport detail).
_SIGNAL_CONSUMED = {"seq", "ts_ns", "instrument_id", "action", "flags", "veto", "entry", "stop", "targets",
                    "direction", "confidence", "pillar_dir", "pillar_conf", "reason", "crc32"}


def finite(x: Any) -> float | None:
    """JSON has no NaN/inf: orjson would write null where the schema promised a number."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def iso(ts_ns: int) -> str:
    secs, ns = divmod(int(ts_ns), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"


def age_s(ts_ns: int, now_ns: int) -> float:
    return round(max(0.0, (now_ns - ts_ns) / 1e9), 6)


def label(v: Any) -> str:
    # The reader maps known codes to names and leaves unknown ones as ints.
    return v if isinstance(v, str) else f"unknown:{v}"


def _f32(v: list[float], i: int) -> float | None:
    # Pillars are float32 in the segment: digits past the 7th are conversion noise.
    x = finite(v[i]) if i < len(v) else None
    return None if x is None else float(f"{x:.7g}")


def pillars(dirs: list[float], confs: list[float]) -> dict[str, dict[str, float | None]]:
    return {n: {"direction": _f32(dirs, i), "confidence": _f32(confs, i)} for i, n in enumerate(PILLARS)}


def _freshness(segment: str, st: dict[str, Any], now_ns: int, stale_after_s: float) -> dict[str, Any]:
    age = age_s(st["ts_ns"], now_ns)
    return {"segment": segment, "ts_ns": st["ts_ns"], "timestamp": iso(st["ts_ns"]), "age_s": age,
            "stale": age > stale_after_s or st.get("feed_state") != "live"}


def market(segment: str, st: dict[str, Any], now_ns: int, stale_after_s: float) -> dict[str, Any]:
    last, bid, ask = finite(st.get("last")), finite(st.get("bid")), finite(st.get("ask"))
    price = last if last is not None else (bid + ask) / 2 if bid is not None and ask is not None else None
    return {**_freshness(segment, st, now_ns, stale_after_s), "instrument_id": st["instrument_id"],
            "price": price, "last": last, "bid": bid, "ask": ask, "volume": st["volume"],
            "source": label(st["source"]), "feed_state": label(st["feed_state"]),
            "market_ts_ns": st.get("market_ts") or None,
            "pillars": pillars(st.get("pillar_dir", []), st.get("pillar_conf", []))}


def zone(z: dict[str, Any]) -> dict[str, Any]:
    return {"price": finite(z.get("price")), "side": ZONE_SIDES.get(z.get("side", ""), "unknown"),
            "kind": ZONE_KINDS.get(z.get("kind", 0), f"unknown:{z.get('kind')}"),
            "state": ZONE_STATES.get(z.get("state", 0), f"unknown:{z.get('state')}"),
            "strength": _f32([z.get("strength")], 0), "volume": int(z.get("volume", 0))}


def zones(segment: str, st: dict[str, Any], now_ns: int, stale_after_s: float) -> dict[str, Any]:
    zs = [zone(z) for z in st.get("zones", [])]
    return {**_freshness(segment, st, now_ns, stale_after_s), "count": len(zs), "zones": zs}


def signal(s: dict[str, Any], now_ns: int) -> dict[str, Any]:
    reason = s.get("reason", "")
    out = {"seq": s["seq"], "ts_ns": s["ts_ns"], "timestamp": iso(s["ts_ns"]), "age_s": age_s(s["ts_ns"], now_ns),
           "instrument_id": s["instrument_id"], "action": label(s["action"]),
           "direction": finite(s.get("direction")), "confidence": finite(s.get("confidence")),
           "entry": finite(s.get("entry")), "stop": finite(s.get("stop")),
           "targets": [t for t in (finite(x) for x in s.get("targets", [])) if t is not None],
           "veto": s.get("veto", 0), "vetoed": bool(s.get("veto", 0)), "flags": s.get("flags", 0),
           "pillars": pillars(s.get("pillar_dir", []), s.get("pillar_conf", [])),
           # The daemon joins its reasons with "; " (veto first).
           "reason": reason, "reasons": [r for r in reason.split("; ") if r],
           "reason_truncated": len(reason.encode()) >= REASON_FULL}
    for k, v in s.items():
        if k not in _SIGNAL_CONSUMED and k not in out:
            out[k] = v
    return out
