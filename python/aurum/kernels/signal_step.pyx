# cython: language_level=3
"""The signal builder's state machine, compiled: ``SignalBuilder.step`` runs at every bar close,
so it is C; building the Signal (entry, stop, targets, reasons) stays in Python in
``aurum.decision.signal``, which subclasses ``BuilderCore`` and documents the rules.
"""

BUY, SELL, FLAT = "BUY", "SELL", "FLAT"

RISK_VETOES = (
    ("stale", "stale data"),
    ("spread_blowout", "spread blow-out"),
    ("liquidity_vacuum", "liquidity vacuum"),
    ("crossed", "crossed book"),
    ("locked", "locked book"),
    ("maybe_bad_book", "exchange flagged the book as maybe bad"),
)


cdef class BuilderCore:
    """Position, cooldown and veto state; ``SignalBuilder`` sets them up and emits signals."""

    cpdef object step(self, double direction, double confidence, object risk=None, object feed_degraded=None):
        """The state machine of ``on_bar`` on the score's numbers alone: ``(action, why, veto)``
        when the decision changes (then ``_emit`` builds the signal), else None. The decision
        engine calls this every bar and builds the score, market and levels only on a change.

        ``risk`` may also be a zero-argument callable returning the inputs: it is only called
        when a veto can change the outcome, which spares the lookup while flat and idle."""
        cfg = self.config
        cdef double d = direction, c = confidence, min_conf = cfg.min_confidence, sign
        self._bars_since_change += 1
        if self.position == FLAT and not (c >= min_conf and abs(d) >= <double>cfg.enter):
            return None  # flat with no entry in sight: no veto or cooldown could change that
        veto = self._veto(risk, feed_degraded)
        if veto is not None:
            return (FLAT, (f"veto: {veto}",), veto) if self.position != FLAT else None
        want = self.position
        why = []
        if self.position == FLAT:
            want = BUY if d > 0 else SELL
            why.append(f"score {d:+.2f} beyond entry threshold {cfg.enter:.2f}, confidence {c:.2f}")
        else:
            sign = 1 if self.position == BUY else -1
            if sign * d <= <double>cfg.exit or c < min_conf / 2:
                want = FLAT
                why.append(f"score {d:+.2f} back inside exit threshold {cfg.exit:.2f}" if sign * d <= <double>cfg.exit
                           else f"confidence {c:.2f} fell below {cfg.min_confidence / 2:.2f}")
        if want == self.position:
            return None
        if self._bars_since_change <= cfg.cooldown_bars:
            return None  # hold: a change this soon after the last is more likely noise
        return want, tuple(why), None

    cpdef object _veto(self, object risk, object feed_degraded):
        if feed_degraded:
            return f"degraded feed ({feed_degraded})"
        if callable(risk):
            risk = risk()
        for key, text in RISK_VETOES:
            if risk and risk.get(key):
                return text
        return None
