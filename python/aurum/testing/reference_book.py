"""An independent, plain-Python L3 (market-by-order) book, used as the oracle for the native book.

It consumes records decoded by the official ``databento`` package (``MBOMsg`` objects from
``databento.DBNStore.from_file(path)`` iteration or ``replay``) and shares no code with the Rust
engine. It is deliberately simple: dicts and sorted lists, no numpy, clarity over speed.

Book rules (the spec; the native book implements the same one):

* ``A`` add: append the order to the back of its price level's FIFO queue. An add whose side is
  neither ``B`` nor ``A`` is ignored (anomaly). An add of an order id that is already live
  replaces it: the old order is removed and the new one added at the back (anomaly).
* ``C`` cancel: ``order.size -= rec.size``; the order is removed when its size reaches <= 0
  (going below zero is an "over-cancel" anomaly). A cancel of an unknown order id is ignored
  (anomaly).
* ``M`` modify: an unknown order id is treated as an add (anomaly). New size 0 removes the order.
  A price (or side) change moves the order to the back of the queue at the new price; a size
  increase at the same price sends it to the back of its queue; a size decrease (or no change)
  at the same price keeps its queue position.
* ``R`` clear: drop every order of the instrument.
* ``T``, ``F``, ``N``: never change the book.
* Snapshots: when a record flagged ``F_SNAPSHOT`` arrives for an instrument that is not currently
  inside a snapshot, that instrument's book is cleared first (files from before 2024-02-10 have
  no leading ``R``) and the instrument is marked in-snapshot; the snapshot ends at the
  instrument's next record flagged ``F_LAST``.

Prices are DBN fixed-point integers (1 unit = 1e-9). An empty side reads as
``(UNDEF_PRICE, 0, 0)``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

UNDEF_PRICE: int = 2**63 - 1
F_LAST: int = 0x80
F_SNAPSHOT: int = 0x20
MBO_RTYPE: int = 0xA0

Level = tuple[int, int, int]
"""(price, total size, order count)."""
Top = tuple[int, int, int, int, int, int]
"""(bid_px, bid_sz, bid_ct, ask_px, ask_sz, ask_ct)."""
QueuePosition = tuple[int, int, int, int, int]
"""(side as ord('B'|'A'), price, size, orders_ahead, size_ahead)."""


def char_of(value: Any) -> str:
    """A one-character action/side code from a databento-dbn enum (``Action.ADD``), a str or an int."""
    inner = getattr(value, "value", value)
    if isinstance(inner, int):
        return chr(inner)
    text = str(inner)
    if len(text) != 1:
        raise ValueError(f"cannot read a one-character code from {value!r}")
    return text


def int_of(value: Any) -> int:
    """An int from a plain int or an int-valued enum/flag set."""
    inner = getattr(value, "value", value)
    return int(inner)


@dataclass
class Order:
    order_id: int
    side: str  # 'B' or 'A'
    price: int
    size: int


class PriceLevel:
    """One price on one side: a FIFO queue of orders (dict insertion order = queue priority)."""

    __slots__ = ("queue", "size")

    def __init__(self) -> None:
        self.queue: dict[int, Order] = {}
        self.size: int = 0

    def push_back(self, order: Order) -> None:
        self.queue[order.order_id] = order
        self.size += order.size

    def remove(self, order: Order) -> None:
        del self.queue[order.order_id]
        self.size -= order.size

    def __len__(self) -> int:
        return len(self.queue)


class BookSide:
    """All price levels of one side, with the prices kept in a sorted list."""

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, PriceLevel] = {}
        self._prices: list[int] = []  # ascending

    def add(self, order: Order) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = PriceLevel()
            self.levels[order.price] = level
            bisect.insort(self._prices, order.price)
        level.push_back(order)

    def remove(self, order: Order) -> None:
        level = self.levels[order.price]
        level.remove(order)
        if not level:
            del self.levels[order.price]
            index = bisect.bisect_left(self._prices, order.price)
            assert self._prices[index] == order.price
            del self._prices[index]

    def change_size_in_place(self, order: Order, new_size: int) -> None:
        """Set the order's size without touching its queue position."""
        self.levels[order.price].size += new_size - order.size
        order.size = new_size

    def best_prices(self, depth: int) -> list[int]:
        if depth <= 0:
            return []
        if self.is_bid:
            return self._prices[::-1][:depth]
        return self._prices[:depth]

    def top(self) -> Level:
        if not self._prices:
            return (UNDEF_PRICE, 0, 0)
        price = self._prices[-1] if self.is_bid else self._prices[0]
        level = self.levels[price]
        return (price, level.size, len(level))

    def depth(self, depth: int) -> list[Level]:
        return [(p, self.levels[p].size, len(self.levels[p])) for p in self.best_prices(depth)]

    def clear(self) -> None:
        self.levels.clear()
        self._prices.clear()


@dataclass
class InstrumentBook:
    """The L3 book of one instrument."""

    instrument_id: int
    bids: BookSide = field(default_factory=lambda: BookSide(is_bid=True))
    asks: BookSide = field(default_factory=lambda: BookSide(is_bid=False))
    orders: dict[int, Order] = field(default_factory=dict)
    in_snapshot: bool = False
    anomalies: Counter[str] = field(default_factory=Counter)

    def _side(self, side: str) -> BookSide:
        return self.bids if side == "B" else self.asks

    # --- mutations -----------------------------------------------------------------------

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.orders.clear()

    def _insert(self, order_id: int, side: str, price: int, size: int) -> None:
        order = Order(order_id, side, price, size)
        self.orders[order_id] = order
        self._side(side).add(order)

    def _remove(self, order: Order) -> None:
        self._side(order.side).remove(order)
        del self.orders[order.order_id]

    def add(self, order_id: int, side: str, price: int, size: int) -> None:
        if side not in ("B", "A"):
            self.anomalies["add_without_side"] += 1
            return
        old = self.orders.get(order_id)
        if old is not None:
            self.anomalies["duplicate_add"] += 1
            self._remove(old)
        self._insert(order_id, side, price, size)

    def cancel(self, order_id: int, size: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            self.anomalies["unknown_cancel"] += 1
            return
        remaining = order.size - size
        if remaining < 0:
            self.anomalies["over_cancel"] += 1
        if remaining <= 0:
            self._remove(order)
        else:
            self._side(order.side).change_size_in_place(order, remaining)

    def modify(self, order_id: int, side: str, price: int, size: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            self.anomalies["unknown_modify"] += 1
            if size > 0:
                self.add(order_id, side, price, size)
            return
        if size <= 0:
            self._remove(order)
            return
        new_side = side if side in ("B", "A") else order.side
        if new_side != order.side or price != order.price or size > order.size:
            # Loses queue priority: back of the queue at the (new) price.
            self._remove(order)
            self._insert(order_id, new_side, price, size)
        else:
            # Same price, same or smaller size: keeps its place.
            self._side(order.side).change_size_in_place(order, size)

    # --- queries ---------------------------------------------------------------------------

    def top(self) -> Top:
        return self.bids.top() + self.asks.top()

    def levels(self, depth: int = 10) -> tuple[list[Level], list[Level]]:
        return self.bids.depth(depth), self.asks.depth(depth)

    def queue_position(self, order_id: int) -> QueuePosition | None:
        order = self.orders.get(order_id)
        if order is None:
            return None
        level = self._side(order.side).levels[order.price]
        orders_ahead = 0
        size_ahead = 0
        for queued in level.queue.values():
            if queued.order_id == order_id:
                break
            orders_ahead += 1
            size_ahead += queued.size
        return (ord(order.side), order.price, order.size, orders_ahead, size_ahead)

    def check_invariants(self) -> None:
        """Internal consistency (level totals, order index); raises AssertionError."""
        seen = 0
        for side in (self.bids, self.asks):
            assert side._prices == sorted(side.levels), "price index out of sync"
            for price, level in side.levels.items():
                assert len(level) > 0, f"empty level {price}"
                assert level.size == sum(o.size for o in level.queue.values()), f"bad level size at {price}"
                for oid, order in level.queue.items():
                    assert self.orders.get(oid) is order and order.price == price
                    assert order.size > 0
                    seen += 1
        assert seen == len(self.orders), "order index out of sync"


class ReferenceBook:
    """Multi-instrument reference L3 book fed with official ``databento`` records."""

    def __init__(self) -> None:
        self.books: dict[int, InstrumentBook] = {}
        self.records_applied: int = 0

    def book(self, instrument_id: int) -> InstrumentBook:
        book = self.books.get(instrument_id)
        if book is None:
            book = InstrumentBook(instrument_id)
            self.books[instrument_id] = book
        return book

    def apply(self, rec: Any) -> None:
        """Apply one record. Non-MBO records are ignored."""
        if int_of(rec.rtype) != MBO_RTYPE:
            return
        self.records_applied += 1
        book = self.book(int(rec.instrument_id))
        flags = int_of(rec.flags)
        if flags & F_SNAPSHOT and not book.in_snapshot:
            book.clear()
            book.in_snapshot = True

        action = char_of(rec.action)
        side = char_of(rec.side)
        order_id = int(rec.order_id)
        price = int(rec.price)
        size = int(rec.size)
        if action == "A":
            book.add(order_id, side, price, size)
        elif action == "C":
            book.cancel(order_id, size)
        elif action == "M":
            book.modify(order_id, side, price, size)
        elif action == "R":
            book.clear()
        elif action in ("T", "F", "N"):
            pass
        else:
            book.anomalies[f"unknown_action_{action}"] += 1

        if flags & F_LAST:
            book.in_snapshot = False

    # --- queries ---------------------------------------------------------------------------

    def instrument_ids(self) -> list[int]:
        return sorted(self.books)

    def top(self, instrument_id: int) -> Top:
        book = self.books.get(instrument_id)
        if book is None:
            return (UNDEF_PRICE, 0, 0, UNDEF_PRICE, 0, 0)
        return book.top()

    def levels(self, instrument_id: int, depth: int = 10) -> tuple[list[Level], list[Level]]:
        book = self.books.get(instrument_id)
        if book is None:
            return [], []
        return book.levels(depth)

    def queue_position(self, instrument_id: int, order_id: int) -> QueuePosition | None:
        book = self.books.get(instrument_id)
        if book is None:
            return None
        return book.queue_position(order_id)

    def live_order_ids(self, instrument_id: int) -> list[int]:
        book = self.books.get(instrument_id)
        return list(book.orders) if book is not None else []

    def anomalies(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for book in self.books.values():
            total.update(book.anomalies)
        return total
