"""An independent count of native iceberg refills in an MBO stream, for tests.

Written from the microstructure reference (section 1.2), separately from the native
detector and in the plainest form: a dict book, per-event fill totals, and one question per
`M` record: does this order, filled earlier in the same event at its resting price, come
back larger than its fills alone would leave it? Slow (pure Python) but obviously right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

F_LAST = 1 << 7
F_SNAPSHOT = 1 << 5


def count_refills(records: Iterable[Any]) -> dict[int, int]:
    """Order id -> number of events in which it was refilled (same-event rule). ``records``
    are databento-dbn ``MBOMsg`` objects in file order."""
    book: dict[tuple[int, int], tuple[int, int]] = {}  # (instrument, order) -> (price, size)
    event_fills: dict[int, dict[int, list[int]]] = defaultdict(dict)  # instrument -> order -> [d0, fills]
    refilled: dict[int, set[int]] = defaultdict(set)  # instrument -> orders refilled this event
    out: dict[int, int] = defaultdict(int)
    for r in records:
        iid, oid, action = r.instrument_id, r.order_id, _char(r.action)
        flags = int(r.flags)
        key = (iid, oid)
        if action == "F" and not flags & F_SNAPSHOT and key in book:
            price, size = book[key]
            if r.price == price:
                ent = event_fills[iid].setdefault(oid, [size, 0])
                ent[1] += r.size
        elif action == "M":
            ent = event_fills[iid].get(oid)
            old = book.get(key)
            if ent is not None and old is not None and r.price == old[0] and r.size > ent[0] - ent[1]:
                refilled[iid].add(oid)
            if r.size == 0:
                book.pop(key, None)
            else:
                book[key] = (r.price, r.size)
        elif action == "A":
            book[key] = (r.price, r.size)
        elif action == "C":
            old = book.get(key)
            if old is not None:
                left = old[1] - r.size
                if left > 0:
                    book[key] = (old[0], left)
                else:
                    book.pop(key, None)
        elif action == "R":
            for k in [k for k in book if k[0] == iid]:
                del book[k]
        if flags & F_LAST:
            for o in refilled[iid]:
                out[o] += 1
            refilled[iid].clear()
            event_fills[iid].clear()
    return dict(out)


def _char(v: Any) -> str:
    if isinstance(v, str):
        return v[:1]
    if isinstance(v, int):
        return chr(v)
    return str(getattr(v, "value", v))[:1]
