"""Joining a subscription's lines: a client splits a long symbol list into lines of at most
500 symbols (``is_last=0`` on all but the last) under one ``id``. The gateway joins them in
linear time (joining tuples line by line was quadratic: a few thousand lines from one client
held the event loop, and every other session, for seconds) and within a per-session symbol
budget, so no client can make the gateway do unbounded work.
"""

from __future__ import annotations

import dataclasses
import itertools

from aurum.gateway.control import ControlError, SubscriptionRequest

# GLBX.MDP3 lists a few hundred thousand instruments over a year; a live session that names
# more symbols than this one by one wants ALL_SYMBOLS or a parent symbol instead.
MAX_SESSION_SYMBOLS = 100_000


class SubscriptionAssembler:
    """One session's subscription lines in, whole subscriptions out."""

    def __init__(self, max_symbols: int = MAX_SESSION_SYMBOLS) -> None:
        self.max_symbols = max_symbols
        self.symbols = 0
        self._open: dict[int | None, list[SubscriptionRequest]] = {}

    @property
    def open_ids(self) -> list[int | None]:
        """Subscriptions whose last line has not come yet."""
        return list(self._open)

    def add(self, line: SubscriptionRequest) -> SubscriptionRequest | None:
        """The joined subscription when ``line`` is its last, else None. Raises ControlError
        past the session's symbol budget or when a line disagrees with its first one."""
        self.symbols += len(line.symbols)
        if self.symbols > self.max_symbols:
            raise ControlError(f"more than {self.max_symbols} symbols in one session; "
                               "subscribe by parent symbol or ALL_SYMBOLS instead")
        parts = self._open.pop(line.id, None)
        if parts is None:
            parts = [line]
        else:
            first = parts[0]
            if (first.schema, first.stype_in, first.start, first.snapshot) != \
                    (line.schema, line.stype_in, line.start, line.snapshot):
                raise ControlError(f"chunks of subscription {line.id} disagree on schema, stype_in, start or snapshot")
            parts.append(line)
        if not line.is_last:
            self._open[line.id] = parts
            return None
        if len(parts) == 1:
            return line
        extra: dict[str, str] = {}
        for p in parts:
            extra.update(p.extra)
        symbols = tuple(itertools.chain.from_iterable(p.symbols for p in parts))
        return dataclasses.replace(parts[0], symbols=symbols, is_last=True, extra=extra)


__all__ = ["MAX_SESSION_SYMBOLS", "SubscriptionAssembler"]
