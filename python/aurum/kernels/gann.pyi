from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

ANGLE_NAMES: tuple[str, ...]
ANGLE_PRICE_UNITS: npt.NDArray[np.int64]
ANGLE_TIME_UNITS: npt.NDArray[np.int64]
CYCLE_FRACTIONS: tuple[float, ...]
WINDOW_BAR_CYCLE: int
WINDOW_CALENDAR_CYCLE: int
WINDOW_SQUARE: int
WINDOW_DTYPE: np.dtype
"""kind, pivot_index, fraction, center, start, end (bar indices, or ns for calendar cycles), active."""

def square_of_nine(
    p: float, n_steps: int = 8, step_deg: float = 45.0, decimal_shift: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def gann_angles(
    p0: float, b0: float, bar: float, scale: float, direction: int
) -> npt.NDArray[np.float64]: ...
def time_windows(
    t0: int, now: int, cycle: int, tolerance: int, kind: int = 0, pivot_index: int = -1
) -> npt.NDArray[np.void]: ...
def square_price_time(
    p_from: float, b_from: float, p_to: float, b_to: float, scale: float
) -> tuple[float, float]: ...

class GannState:
    supports: npt.NDArray[np.float64]
    support_counts: npt.NDArray[np.int64]
    resistances: npt.NDArray[np.float64]
    resistance_counts: npt.NDArray[np.int64]
    nearest_support: float
    nearest_resistance: float
    windows: npt.NDArray[np.void]
    active_windows: int
    angles: npt.NDArray[np.float64]
    squared_ratio: float
    direction: float
    confidence: float
    reasons: list[str]

class GannEngine:
    scale: float
    tick_size: float
    step_deg: float
    near_ticks: float
    cycle_days: float
    tol_days: float
    square_tolerance: float
    n_steps: int
    n_pivots: int
    cycle_bars: int
    tol_bars: int
    n_levels: int
    decimal_shift: int
    def __init__(
        self,
        price_per_bar: float,
        *,
        tick_size: float = 0.10,
        n_steps: int = 8,
        step_deg: float = 45.0,
        decimal_shift: int = 0,
        n_pivots: int = 4,
        n_levels: int = 8,
        near_ticks: float = 10.0,
        cycle_bars: int = 360,
        tol_bars: int = 2,
        cycle_days: float = 360.0,
        tol_days: float = 1.0,
        square_tolerance: float = 0.05,
    ) -> None: ...
    def update(
        self,
        bars: npt.NDArray[np.void] | Mapping[str, Any],
        pivots: npt.NDArray[np.void],
        last_price: float,
        first_index: int = 0,
    ) -> GannState: ...
