from typing import Any

import numpy as np
import numpy.typing as npt

PIVOT_DTYPE: np.dtype
"""index, confirm_index (bar indices), price_fp (int64, 1e-9 USD), price (float64 USD),
kind (+1 high, -1 low)."""

def zigzag(
    high: npt.NDArray[np.int64], low: npt.NDArray[np.int64], threshold: float | npt.NDArray[np.float64]
) -> npt.NDArray[np.void]: ...
def atr_threshold(
    high: npt.NDArray[np.int64],
    low: npt.NDArray[np.int64],
    close: npt.NDArray[np.int64],
    atr_mult: float,
    atr_period: int = 14,
) -> npt.NDArray[np.float64]: ...
def ring_columns(
    bars: npt.NDArray[np.void],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint64]]: ...
def to_price(fixed: npt.ArrayLike) -> npt.NDArray[np.float64]: ...

class PivotTracker:
    atr_mult: float
    tick_size: float
    def __init__(
        self, threshold_ticks: float | None = None, atr_mult: float | None = None, tick_size: float = 0.10
    ) -> None: ...
    def update(self, high: int, low: int, atr: float = ...) -> int: ...
    def update_many(
        self, high: npt.NDArray[np.int64], low: npt.NDArray[np.int64], atr: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.void]: ...
    @property
    def pivots(self) -> npt.NDArray[np.void]: ...
    def last_pivots(self, count: int) -> npt.NDArray[np.void]: ...
    @property
    def n_pivots(self) -> int: ...
    @property
    def n_bars(self) -> int: ...
    @property
    def direction(self) -> int: ...
    @property
    def candidate(self) -> tuple[int, int] | None: ...
