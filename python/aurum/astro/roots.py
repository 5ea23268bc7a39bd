"""Root finding on a sampled grid: find sign changes coarsely, then refine with Brent.

Ephemeris calls cost ~50 us each, so the refinement must converge in few calls: Brent's
method (inverse quadratic / secant steps guarded by bisection) typically needs 5-8 calls to
reach a millisecond from an hour-wide bracket, where bisection would need ~22.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def crossings(values: np.ndarray, jump: float = 90.0) -> np.ndarray:
    """Indices i where ``values`` changes sign between i and i+1.

    ``values`` are angles folded into [-180, 180): the fold itself also changes sign (from
    about +180 to -180), so a change counts only where both samples lie within ``jump``
    degrees of zero. Sign is ``x >= 0``, so a root exactly on a sample belongs to the
    interval ending there: neighbouring scans aligned on the same grid agree.
    """
    pos = values >= 0.0
    change = pos[:-1] != pos[1:]
    near = (np.abs(values[:-1]) < jump) & (np.abs(values[1:]) < jump)
    return np.nonzero(change & near)[0]


def brent(f: Callable[[float], float], a: float, b: float, fa: float, fb: float,
          xtol: float, maxiter: int = 60) -> float:
    """A root of f in [a, b] where fa = f(a) and fb = f(b) differ in sign (Brent 1973)."""
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    if (fa > 0.0) == (fb > 0.0):
        raise ValueError("brent: the interval does not bracket a root")
    c, fc = a, fa
    d = e = b - a
    for _ in range(maxiter):
        if (fb > 0.0) == (fc > 0.0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * 1e-15 * abs(b) + 0.5 * xtol
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:  # secant
                p = 2.0 * m * s
                q = 1.0 - s
            else:  # inverse quadratic interpolation
                q = fa / fc
                r = fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else (tol if m > 0 else -tol)
        fb = f(b)
    return b


def refine(f: Callable[[float], float], a: float, b: float, xtol: float,
           widen: float | None = None) -> float | None:
    """Root of f near the grid interval [a, b], or None if exact values do not bracket one.

    The grid may have flagged the interval from interpolated samples; when the exact end
    values do not bracket, the root sits a hair from a grid point, so try the interval widened
    by ``widen`` on each side before giving up.
    """
    fa, fb = f(a), f(b)
    if (fa >= 0.0) == (fb >= 0.0) and widen:
        a, b = a - widen, b + widen
        fa, fb = f(a), f(b)
    if (fa >= 0.0) == (fb >= 0.0) and fa != 0.0 and fb != 0.0:
        return None
    return brent(f, a, b, fa, fb, xtol)
