"""Matching detections to the simulator's ground truth, and the scores.

Pure functions over plain dicts (labels from ``*.labels.jsonl``, detections as
:mod:`aurum.engines` dicts), so the rules are easy to test and to state. ``RULES`` is printed
with every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000
PX = 1_000_000_000  # DBN fixed-point scale; labels carry prices in fixed point

RULES = {
    "native_iceberg": "same order id (label order_id = detected order_id)",
    "synthetic_iceberg": "same instrument, side and price; detection life overlaps the label window +/- {hold_tol_s:g} s",
    "absorption": ("same instrument, side and price; a signal inside the label window +/- {hold_tol_s:g} s. "
                   "A signal at a planted iceberg's level inside its window also counts as correct "
                   "(an iceberg holding a level under aggression is absorption); recall uses absorption labels only"),
    "sweep": "same instrument, kind and aggressor side; |detection ts - label ts| <= {event_tol_ms:g} ms; "
             "first or last detected price among the label's prices",
    "stop_run": "as sweep, kind stop_run",
}

TARGETS = {
    "native_iceberg": ("precision", 0.99, "recall", 0.99),
    "synthetic_iceberg": ("f1", 0.8),
    "absorption": ("f1", 0.9),
    "sweep": ("f1", 0.9),
    "stop_run": ("f1", 0.9),
}


@dataclass
class Score:
    kind: str
    labels: int = 0  # complete labels (the recall denominator)
    detections: int = 0
    labels_found: int = 0
    detections_correct: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    inactive: str | None = None  # the engine did not run (schema lacks what it needs): why

    @property
    def precision(self) -> float | None:
        return self.detections_correct / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        return self.labels_found / self.labels if self.labels else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if r is None:
            return None  # no labels: precision alone says something (see target_met)
        if p is None:
            return 0.0  # labels and no detection: nothing found
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def target_met(self) -> bool | None:
        t = TARGETS.get(self.kind)
        if t is None or self.inactive:
            return None
        pairs = list(zip(t[::2], t[1::2]))
        if not self.labels:
            # Nothing planted: wrong detections still fail, against the precision target (or,
            # for an F1 target, the same bar for precision); none at all is no verdict.
            if self.precision is None:
                return None
            return self.precision >= dict(pairs).get("precision", pairs[0][1])
        vals = {"precision": self.precision, "recall": self.recall, "f1": self.f1}
        return all(vals[m] is not None and vals[m] >= v for m, v in pairs)

    def target_text(self) -> str:
        t = TARGETS.get(self.kind)
        return " ".join(f"{m}>={v:g}" for m, v in zip(t[::2], t[1::2])) if t else ""

    def as_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"kind": self.kind, "labels": self.labels, "detections": self.detections,
                "labels_found": self.labels_found, "detections_correct": self.detections_correct,
                "precision": r(self.precision), "recall": r(self.recall), "f1": r(self.f1),
                "target": self.target_text(), "target_met": self.target_met(), **({"notes": self.notes} if self.notes else {}),
                **({"inactive": self.inactive} if self.inactive else {})}


def _of(labels: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [lab for lab in labels if lab.get("kind") == kind]


def _px(v: float | None) -> int | None:
    return None if v is None else round(v * PX)


def _one_to_one(labs: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]],
                hit: Callable[[dict[str, Any], dict[str, Any]], bool],
                keys: tuple[Callable[[dict[str, Any]], Any], Callable[[dict[str, Any]], Any]] | None = None,
                ) -> tuple[set[int], set[int]]:
    """A maximum one-to-one matching of labels to detections under ``hit``: (indices of
    matched labels, indices of matched detections). One-to-one, so a detector that reports
    one event three times scores one correct detection and two false ones, and one detection
    cannot find two neighbouring labels.

    Augmenting paths (Kuhn), iterative (no recursion limit). Complete labels are matched
    first, and an augmenting path never unmatches a label, so recall counts as many complete
    labels as any matching could. ``keys`` (label key, detection key), when given, must be
    equal for a label and a detection that ``hit``: candidates are looked up by them instead of
    trying every pair.
    Written here because nothing in the project's dependencies does bipartite matching
    (scipy's linear_sum_assignment would need scipy for this alone)."""
    if keys is not None:
        lab_key, det_key = keys
        by_key: dict[Any, list[int]] = {}
        for j, d in enumerate(dets):
            by_key.setdefault(det_key(d), []).append(j)
        adj = [[j for j in by_key.get(lab_key(lab), ()) if hit(lab, dets[j])] for lab in labs]
    else:
        adj = [[j for j, d in enumerate(dets) if hit(lab, d)] for lab in labs]
    det_to_lab: dict[int, int] = {}
    lab_to_det: dict[int, int] = {}
    order = sorted(range(len(labs)), key=lambda i: not labs[i].get("complete", True))
    for root in order:
        if not adj[root]:
            continue
        # Depth-first search for a free detection; parent links rebuild the path.
        seen: set[int] = set()
        came_from: dict[int, int] = {}  # detection -> the label that reached it
        stack = [(root, iter(adj[root]))]
        free = None
        while stack and free is None:
            i, it = stack[-1]
            for j in it:
                if j in seen:
                    continue
                seen.add(j)
                came_from[j] = i
                if j not in det_to_lab:
                    free = j
                else:
                    nxt = det_to_lab[j]
                    stack.append((nxt, iter(adj[nxt])))
                break
            else:
                stack.pop()
        if free is not None:  # flip the path: every label on it takes the next detection
            j = free
            while True:
                i = came_from[j]
                prev = lab_to_det.get(i)  # the detection through which the search reached i
                det_to_lab[j], lab_to_det[i] = i, j
                if i == root or prev is None:
                    break
                j = prev
    return set(det_to_lab.values()), set(det_to_lab)


def score_native(labels: Sequence[dict[str, Any]], icebergs: Sequence[dict[str, Any]]) -> Score:
    s = Score("native_iceberg")
    labs = _of(labels, "native_iceberg")
    det = [d for d in icebergs if d["kind"] == "native"]
    by_id = (lambda lab: lab["order_id"], lambda d: d["order_id"])
    _count(s, labs, det, lambda lab, d: d["order_id"] == lab["order_id"], by_id)
    return s


def _count(s: Score, labs: Sequence[dict[str, Any]], det: Sequence[dict[str, Any]],
           hit: Callable[[dict[str, Any], dict[str, Any]], bool], keys: Any = None) -> set[int]:
    """Fills ``s`` from a one-to-one matching; returns the matched detections' indices.
    Labels cut off by the end of the file (``complete`` false) may be matched, so a detection
    of one is correct, but they are not in the recall denominator."""
    matched_labs, matched_dets = _one_to_one(labs, det, hit, keys)
    s.labels = sum(1 for lab in labs if lab.get("complete", True))
    s.detections = len(det)
    s.labels_found = sum(1 for i in matched_labs if labs[i].get("complete", True))
    s.detections_correct = len(matched_dets)
    return matched_dets


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 <= b1 and b0 <= a1


# Label and detection keys of one (instrument, side, price level): the candidates of a label.
_AT_LEVEL = (lambda lab: (lab["instrument_id"], lab["side"], lab["price"]),
             lambda d: (d["instrument_id"], d["side"], _px(d["price"])))


def score_synthetic(labels: Sequence[dict[str, Any]], icebergs: Sequence[dict[str, Any]], hold_tol_s: float) -> Score:
    s = Score("synthetic_iceberg")
    tol = int(hold_tol_s * NS)
    labs = _of(labels, "synthetic_iceberg")
    det = [d for d in icebergs if d["kind"] == "synthetic"]

    def hit(lab: dict[str, Any], d: dict[str, Any]) -> bool:
        return (d["instrument_id"] == lab["instrument_id"] and d["side"] == lab["side"]
                and _px(d["price"]) == lab["price"]
                and _overlaps(d["first_ts"], d["last_ts"], lab["ts_start"] - tol, lab["ts_end"] + tol))

    _count(s, labs, det, hit, _AT_LEVEL)
    return s


def score_absorption(labels: Sequence[dict[str, Any]], signals: Sequence[dict[str, Any]], hold_tol_s: float) -> Score:
    """``signals``: one dict per absorption signal (instrument_id, side, price, ts)."""
    s = Score("absorption")
    tol = int(hold_tol_s * NS)
    labs = _of(labels, "absorption")
    icebergs = _of(labels, "native_iceberg") + _of(labels, "synthetic_iceberg")

    def hit(lab: dict[str, Any], d: dict[str, Any]) -> bool:
        return (d["instrument_id"] == lab["instrument_id"] and d["side"] == lab["side"]
                and _px(d["price"]) == lab["price"] and lab["ts_start"] - tol <= d["ts"] <= lab["ts_end"] + tol)

    matched = _count(s, labs, signals, hit, _AT_LEVEL)
    # The rest may each stand for one planted iceberg's level (one-to-one as well).
    rest = [d for j, d in enumerate(signals) if j not in matched]
    at_iceberg = len(_one_to_one(icebergs, rest, hit, _AT_LEVEL)[1])
    s.detections_correct += at_iceberg
    if at_iceberg:
        s.notes["correct_at_planted_iceberg"] = at_iceberg
    return s


def score_sweeps(labels: Sequence[dict[str, Any]], sweeps: Sequence[dict[str, Any]], kind: str, event_tol_ms: float) -> Score:
    s = Score(kind)
    tol = int(event_tol_ms * 1_000_000)
    labs = _of(labels, kind)
    det = [d for d in sweeps if d["kind"] == kind]

    def hit(lab: dict[str, Any], d: dict[str, Any]) -> bool:
        if d["instrument_id"] != lab["instrument_id"] or d["side"] != lab["aggressor_side"]:
            return False
        dt = min(abs(d["ts_event"] - lab["ts_start"]), abs(d["ts_recv"] - lab["ts_start"]))
        prices = set(lab["prices"])
        return dt <= tol and (_px(d["first_px"]) in prices or _px(d["last_px"]) in prices)

    by_side = (lambda lab: (lab["instrument_id"], lab["aggressor_side"]), lambda d: (d["instrument_id"], d["side"]))
    _count(s, labs, det, hit, by_side)
    return s


def score_all(labels: Sequence[dict[str, Any]], icebergs: Sequence[dict[str, Any]],
              absorption_signals: Sequence[dict[str, Any]], sweeps: Sequence[dict[str, Any]],
              *, hold_tol_s: float = 5.0, event_tol_ms: float = 50.0) -> list[Score]:
    return [
        score_native(labels, icebergs),
        score_synthetic(labels, icebergs, hold_tol_s),
        score_absorption(labels, absorption_signals, hold_tol_s),
        score_sweeps(labels, sweeps, "sweep", event_tol_ms),
        score_sweeps(labels, sweeps, "stop_run", event_tol_ms),
    ]


def rules_text(hold_tol_s: float, event_tol_ms: float) -> dict[str, str]:
    return {k: v.format(hold_tol_s=hold_tol_s, event_tol_ms=event_tol_ms) for k, v in RULES.items()}


__all__ = ["RULES", "TARGETS", "Score", "rules_text", "score_absorption", "score_all", "score_native",
           "score_sweeps", "score_synthetic"]
