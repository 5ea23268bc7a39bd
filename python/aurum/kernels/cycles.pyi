from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

def ht_dcperiod(close: F64) -> F64: ...

class HilbertDominantCycle:
    def __init__(self) -> None: ...
    def reset(self) -> None: ...
    def update(self, price: float) -> float: ...

class AutocorrPeriodogram:
    min_period: int
    max_period: int
    avg_length: int
    dominant: float
    def __init__(self, min_period: int = 10, max_period: int = 48, avg_length: int = 3) -> None: ...
    def reset(self) -> None: ...
    def update(self, price: float) -> float: ...
    def update_many(self, prices: F64) -> float: ...
    @property
    def power(self) -> F64: ...
    @property
    def periods(self) -> F64: ...

def autocorrelation_periodogram(
    close: F64, min_period: int = 10, max_period: int = 48, avg_length: int = 3
) -> tuple[float, F64]: ...
def goertzel_spectrum(x: F64, periods: Sequence[float] | F64, detrend: str = "linear") -> tuple[F64, F64]: ...
def goertzel_powers(x: F64, periods: Sequence[float] | F64, detrend: str = "linear") -> F64: ...
def goertzel_power(x: F64, period: float, detrend: str = "linear") -> float: ...

# Defined in aurum.kernels.cycle_counts; re-exported here as part of this module's API.
from aurum.kernels.cycle_counts import PeriodCount as PeriodCount
from aurum.kernels.cycle_counts import cycle_counts as cycle_counts

class CycleState(NamedTuple):
    bar: int
    hilbert_period: float
    acp_period: float
    acp_power: F64
    periods: tuple[int, ...]
    goertzel_share: F64
    counts: list[PeriodCount]
    window_periods: tuple[int, ...]
    direction: float
    confidence: float
    reasons: list[str]

class CycleEngine:
    periods: tuple[int, ...]
    tolerance: int
    anchors: int
    detrend: str
    def __init__(
        self,
        periods: Sequence[int] = (21, 45, 90),
        tolerance: int = 2,
        anchors: int = 3,
        min_period: int = 10,
        max_period: int = 48,
        avg_length: int = 3,
        detrend: str = "linear",
    ) -> None: ...
    def reset(self) -> None: ...
    def update(
        self,
        closes: F64,
        pivots: tuple[npt.ArrayLike, npt.ArrayLike] | None,
        current_bar: int,
    ) -> CycleState: ...
