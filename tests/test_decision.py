"""The five-pillar scorer and the signal builder."""

from __future__ import annotations

import pytest

from aurum.decision.scorer import ConfidenceScorer, Pillar
from aurum.decision.signal import BUY, FLAT, SELL, Level, Market, SignalBuilder, SignalConfig


def p(name: str, d: float, c: float) -> Pillar:
    return Pillar(name, d, c, (f"{name} says {d:+.1f}",))


def test_missing_pillars_drop_out_and_weights_renormalise() -> None:
    sc = ConfidenceScorer({"qmo": 0.4, "imo": 0.4, "gann": 0.2, "astro": 0.0, "cycle": 0.0})
    full = sc.score({"qmo": p("qmo", 1, 1), "imo": p("imo", 1, 1), "gann": p("gann", 1, 1)})
    assert full.direction == pytest.approx(1.0) and full.confidence == pytest.approx(1.0)
    assert not full.degraded
    part = sc.score({"qmo": p("qmo", 1, 1), "imo": None, "gann": p("gann", -1, 1)})
    assert part.weights == pytest.approx({"qmo": 2 / 3, "gann": 1 / 3})
    assert part.direction == pytest.approx(1 / 3)
    assert part.missing == ("imo",) and part.degraded
    # Disagreement lowers confidence even when every pillar is sure.
    assert part.confidence == pytest.approx(1 / 3)
    assert sc.score({}).confidence == 0.0


def test_unsure_pillars_pull_less() -> None:
    sc = ConfidenceScorer({"qmo": 1, "imo": 1})
    s = sc.score({"qmo": p("qmo", 1, 0.9), "imo": p("imo", -1, 0.1)})
    assert s.direction == pytest.approx(0.8)


def test_bad_weights_and_pillars_are_refused_with_names() -> None:
    with pytest.raises(ValueError, match="bogus"):
        ConfidenceScorer({"bogus": 1.0})
    with pytest.raises(ValueError, match="gann"):
        ConfidenceScorer({"gann": -1.0})
    with pytest.raises(ValueError, match="sum to 0"):
        ConfidenceScorer({"qmo": 0.0})
    with pytest.raises(ValueError, match="direction"):
        Pillar("qmo", 1.5, 0.5)
    sc = ConfidenceScorer()
    before = dict(sc.weights)
    with pytest.raises(ValueError):
        sc.set_weights({"qmo": float("nan")})
    assert sc.weights == before


def mk(ts: int, price: float = 4100.0) -> Market:
    return Market(ts=ts, price=price, bid=price - 0.1, ask=price, tick=0.1, atr=1.0)


def test_hysteresis_cooldown_and_levels() -> None:
    sc = ConfidenceScorer({"qmo": 1.0})
    b = SignalBuilder(SignalConfig(enter=0.4, exit=0.1, min_confidence=0.2, cooldown_bars=2))
    levels = [Level(4098.5, "B", "iceberg zone", 0.8), Level(4099.0, "B", "absorption zone", 0.5),
              Level(4101.0, "A", "iceberg zone", 0.7), Level(4102.3, "A", "gann", 0.0)]
    assert b.on_bar(sc.score({"qmo": p("qmo", 0.3, 1)}), mk(1), levels) is None  # below entry
    sig = b.on_bar(sc.score({"qmo": p("qmo", 0.6, 1)}), mk(2), levels)
    assert sig is not None and sig.action == BUY and sig.entry == 4100.0
    assert sig.stop == pytest.approx(4098.8)  # 2 ticks below the nearest support, 4099.0
    assert sig.targets == (4101.0, 4102.3)
    assert any("qmo:" in r for r in sig.reasons)
    # Between exit and entry: hold the position (hysteresis).
    assert b.on_bar(sc.score({"qmo": p("qmo", 0.2, 1)}), mk(3), levels) is None
    # Below exit but inside the cooldown: hold.
    assert b.on_bar(sc.score({"qmo": p("qmo", -0.9, 1)}), mk(4), levels) is None
    out = b.on_bar(sc.score({"qmo": p("qmo", -0.9, 1)}), mk(5), levels)
    assert out is not None and out.action == FLAT and out.entry is None
    for t in (6, 7):
        assert b.on_bar(sc.score({"qmo": p("qmo", -0.9, 1)}), mk(t), levels) is None
    short = b.on_bar(sc.score({"qmo": p("qmo", -0.9, 1)}), mk(8), levels)
    assert short is not None and short.action == SELL
    assert short.stop == pytest.approx(4101.2) and short.targets == (4099.0, 4098.5)
    assert [short.seq, out.seq, sig.seq] == [3, 2, 1]


def test_without_zones_stop_is_an_atr_multiple_and_target_a_reward_multiple() -> None:
    b = SignalBuilder(SignalConfig(atr_stop_mult=1.5, reward_risk=2.0, cooldown_bars=0))
    sig = b.on_bar(ConfidenceScorer({"qmo": 1}).score({"qmo": p("qmo", 0.9, 1)}), mk(1), [])
    assert sig is not None and sig.stop == pytest.approx(4098.5) and sig.targets == (4103.0,)
    assert sig.reasons[1] == "no defending zone: stop at an ATR multiple"  # right after the decision's reason


def test_veto_forces_flat_at_once_and_names_the_reason() -> None:
    sc = ConfidenceScorer({"qmo": 1.0})
    b = SignalBuilder(SignalConfig(cooldown_bars=2))
    assert b.on_bar(sc.score({"qmo": p("qmo", 0.9, 1)}), mk(1), []).action == BUY  # type: ignore[union-attr]
    # The veto comes the very next bar: the cooldown never delays it.
    v = b.on_bar(sc.score({"qmo": p("qmo", 0.9, 1)}), mk(2), [], risk={"spread_blowout": True})
    assert v is not None and v.action == FLAT and v.veto == "spread blow-out"
    # While vetoed nothing new opens, however strong the score.
    assert b.on_bar(sc.score({"qmo": p("qmo", 0.9, 1)}), mk(30), [], risk={"stale": True}) is None
    assert b.on_bar(sc.score({"qmo": p("qmo", 0.9, 1)}), mk(31), [], feed_degraded="yahoo fallback") is None
    again = b.on_bar(sc.score({"qmo": p("qmo", 0.9, 1)}), mk(32), [], risk={})
    assert again is not None and again.action == BUY


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="exit < enter"):
        SignalConfig(enter=0.2, exit=0.3)


def test_aurum_astro_is_wired_into_the_main_cli() -> None:
    import subprocess
    import sys

    import orjson

    out = subprocess.run([sys.executable, "-m", "aurum.cli", "astro", "--from", "2026-01-01", "--to", "2026-02-01",
                          "--json", "--types", "full_moon"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (ev,) = orjson.loads(out.stdout)
    # USNO: full moon 2026-01-03 10:03 UTC (minute precision).
    assert ev["type"] == "full_moon" and ev["time"].startswith("2026-01-03T10:0")
    bad = subprocess.run([sys.executable, "-m", "aurum.cli", "astro", "--from", "2026-13-01"], capture_output=True,
                         timeout=60)
    assert bad.returncode == 2 and b"aurum astro" in bad.stderr
