"""`aurum eval`: the matching rules on hand-made cases, then the detectors against the
simulator's labels (seeded scenarios), with the issue's targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from aurum.evaluation.matching import score_absorption, score_native, score_sweeps, score_synthetic

S = 1_000_000_000
PX = 1_000_000_000


def lab(kind: str, **kw: object) -> dict[str, object]:
    base = {"kind": kind, "instrument_id": 7, "side": "B", "price": 4100 * PX, "ts_start": 100 * S,
            "ts_end": 130 * S, "complete": True}
    return {**base, **kw}


def test_native_matching_is_by_order_id() -> None:
    labels = [lab("native_iceberg", order_id=11), lab("native_iceberg", order_id=12),
              lab("native_iceberg", order_id=13, complete=False)]
    det = [{"kind": "native", "order_id": 11}, {"kind": "native", "order_id": 99},
           {"kind": "synthetic", "order_id": 12}]
    s = score_native(labels, det)
    assert (s.labels, s.labels_found, s.detections, s.detections_correct) == (2, 1, 2, 1)
    assert s.precision == 0.5 and s.recall == 0.5 and s.f1 == 0.5
    assert s.target_met() is False


def test_synthetic_matching_uses_side_price_and_time() -> None:
    labels = [lab("synthetic_iceberg")]
    ok = {"kind": "synthetic", "instrument_id": 7, "side": "B", "price": 4100.0, "first_ts": 128 * S, "last_ts": 140 * S}
    late = {**ok, "first_ts": 136 * S, "last_ts": 150 * S}
    other_side = {**ok, "side": "A"}
    s = score_synthetic(labels, [ok, late, other_side], hold_tol_s=5.0)
    assert (s.labels_found, s.detections_correct) == (1, 1)


def test_absorption_signal_at_planted_iceberg_is_correct_but_not_recall() -> None:
    labels = [lab("absorption", price=4200 * PX), lab("native_iceberg", order_id=5)]
    signals = [{"instrument_id": 7, "side": "B", "price": 4100.0, "ts": 120 * S},
               {"instrument_id": 7, "side": "B", "price": 4300.0, "ts": 120 * S}]
    s = score_absorption(labels, signals, hold_tol_s=5.0)
    assert (s.labels, s.labels_found, s.detections, s.detections_correct) == (1, 0, 2, 1)
    assert s.notes == {"correct_at_planted_iceberg": 1}


def test_sweep_matching_needs_kind_side_time_and_price() -> None:
    labels = [lab("sweep", aggressor_side="B", ts_start=100 * S, prices=[4100 * PX, 4100 * PX + PX // 10])]
    good = {"kind": "sweep", "instrument_id": 7, "side": "B", "ts_event": 100 * S + 10, "ts_recv": 100 * S + 20,
            "first_px": 4100.0, "last_px": 4100.1}
    wrong_time = {**good, "ts_event": 101 * S, "ts_recv": 101 * S}
    wrong_kind = {**good, "kind": "stop_run"}
    s = score_sweeps(labels, [good, wrong_time, wrong_kind], "sweep", event_tol_ms=50.0)
    assert (s.labels_found, s.detections, s.detections_correct) == (1, 2, 1)


def test_matching_is_one_to_one() -> None:
    labels = [lab("sweep", aggressor_side="B", ts_start=100 * S, prices=[4100 * PX])]
    d = {"kind": "sweep", "instrument_id": 7, "side": "B", "ts_event": 100 * S, "ts_recv": 100 * S,
         "first_px": 4100.0, "last_px": 4100.0}
    # The same sweep reported three times: one correct detection, two false ones.
    s = score_sweeps(labels, [d, dict(d), dict(d)], "sweep", event_tol_ms=50.0)
    assert (s.labels_found, s.detections, s.detections_correct) == (1, 3, 1)
    assert s.precision == pytest.approx(1 / 3) and s.target_met() is False
    # One synthetic detection cannot find two planted icebergs at the same level 7 s apart.
    two = [lab("synthetic_iceberg", ts_start=100 * S, ts_end=110 * S),
           lab("synthetic_iceberg", ts_start=117 * S, ts_end=125 * S)]
    one = {"kind": "synthetic", "instrument_id": 7, "side": "B", "price": 4100.0, "first_ts": 108 * S, "last_ts": 119 * S}
    s = score_synthetic(two, [one], hold_tol_s=5.0)
    assert (s.labels, s.labels_found, s.detections_correct) == (2, 1, 1) and s.recall == 0.5
    # A maximum matching, not a greedy one: detection A fits both labels, B only the first.
    a = {**one, "first_ts": 108 * S, "last_ts": 119 * S}
    b = {**one, "first_ts": 95 * S, "last_ts": 101 * S}
    s = score_synthetic(two, [a, b], hold_tol_s=5.0)
    assert (s.labels_found, s.detections_correct) == (2, 2)
    # Duplicate native rows of one order id.
    s = score_native([lab("native_iceberg", order_id=11)], [{"kind": "native", "order_id": 11}] * 2)
    assert (s.labels_found, s.detections_correct) == (1, 1)


def test_no_labels_and_wrong_detections_miss_the_target_and_no_detections_is_f1_zero() -> None:
    d = {"kind": "sweep", "instrument_id": 7, "side": "B", "ts_event": 100 * S, "ts_recv": 100 * S,
         "first_px": 4100.0, "last_px": 4100.0}
    s = score_sweeps([], [d] * 5, "sweep", event_tol_ms=50.0)
    assert s.precision == 0.0 and s.recall is None and s.target_met() is False
    assert score_sweeps([], [], "sweep", event_tol_ms=50.0).target_met() is None
    labels = [lab("sweep", aggressor_side="B", ts_start=100 * S, prices=[4100 * PX])]
    s = score_sweeps(labels, [], "sweep", event_tol_ms=50.0)
    assert s.f1 == 0.0 and s.target_met() is False


@pytest.mark.parametrize("args, says", [
    (["--seed", "-1"], "argument --seed: was '-1', expected an integer >= 0"),
    (["--event-tol", "nan"], "argument --event-tol: was 'nan', expected a finite number >= 0"),
    (["--seed", "1" + "0" * 400], "expected an integer >= 0"),  # no float for it: was an OverflowError
    (["--hold-tol", "inf"], "argument --hold-tol: was 'inf', expected a finite number >= 0"),
    (["--keep", "{file}", "--scenarios", "quiet", "--records", "10000"], "exists and is not a directory"),
    (["{file}"], "bad magic"),
    (["{dir}"], "is not a file"),
])
def test_eval_bad_input_is_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    f = tmp_path / "not-dbn.txt"
    f.write_text("hello\n")
    args = [a.format(file=f, dir=tmp_path) for a in args]
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "eval", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr
    assert says in out.stderr.strip().splitlines()[-1]


def _eval(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "eval", "--json", *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


@pytest.fixture(scope="module")
def mbo_eval() -> dict[str, object]:
    return _eval("--scenarios", "icebergs,absorption,sweeps,mixed", "--seed", "3", "--records", "300000")


def test_detectors_meet_targets_on_simulated_mbo(mbo_eval: dict[str, object]) -> None:
    total = {s["kind"]: s for s in mbo_eval["total"]}  # type: ignore[index]
    for kind in ("native_iceberg", "synthetic_iceberg", "absorption", "sweep", "stop_run"):
        assert total[kind]["labels"] >= 3, (kind, total[kind])
        assert total[kind]["target_met"], total[kind]
    assert set(mbo_eval["matching"]) == set(total)  # type: ignore[arg-type]


def test_l2_only_session_finds_absorption_and_sweeps_but_no_icebergs() -> None:
    res = _eval("--scenarios", "absorption,sweeps", "--seed", "4", "--records", "200000", "--schema", "mbp-10")
    total = {s["kind"]: s for s in res["total"]}  # type: ignore[index]
    assert total["native_iceberg"]["detections"] == 0
    assert total["absorption"]["recall"] > 0.5, total["absorption"]
    assert total["sweep"]["recall"] > 0.5, total["sweep"]


def test_eval_scans_real_files(es_real: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "eval", "--json", str(es_real / "esh4-20231225.mbo.dbn.zst")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (doc,) = orjson.loads(out.stdout)
    assert doc["records"] == 68_792
    assert doc["native_icebergs"] >= 12
    assert doc["native_refill_events"] >= 83


def test_the_matching_is_maximum_and_prefers_complete_labels() -> None:
    import itertools
    import random

    from aurum.evaluation.matching import _one_to_one

    rng = random.Random(1)
    for _ in range(200):  # against brute force on small random graphs
        n_l, n_d = rng.randint(0, 6), rng.randint(0, 6)
        edges = {(i, j) for i in range(n_l) for j in range(n_d) if rng.random() < 0.35}
        ml, md = _one_to_one([{"i": i} for i in range(n_l)], list(range(n_d)), lambda lab, d: (lab["i"], d) in edges)
        best = next((k for k in range(min(n_l, n_d), 0, -1)
                     if any(len({i for i, _ in c}) == len({j for _, j in c}) == k
                            for c in itertools.combinations(sorted(edges), k))), 0)
        assert len(ml) == len(md) == best
    # One detection, a cut-off label and a complete one: the complete one gets it, in either order.
    d = {"kind": "sweep", "instrument_id": 7, "side": "B", "ts_event": 100 * S, "ts_recv": 100 * S,
         "first_px": 4100.0, "last_px": 4100.0}
    cut = lab("sweep", aggressor_side="B", ts_start=100 * S, prices=[4100 * PX], complete=False)
    whole = lab("sweep", aggressor_side="B", ts_start=100 * S, prices=[4100 * PX])
    for labels in ([cut, whole], [whole, cut]):
        s = score_sweeps(labels, [d], "sweep", event_tol_ms=50.0)
        assert (s.labels, s.labels_found, s.recall) == (1, 1, 1.0)
    # A long chain of overlapping pairs: no recursion limit.
    n = 1500
    ml, md = _one_to_one([{"i": i} for i in range(n)], list(range(n)), lambda lab, d: d in (lab["i"], lab["i"] - 1))
    assert len(ml) == len(md) == n
