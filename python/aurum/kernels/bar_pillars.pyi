import numpy as np
import numpy.typing as npt

from aurum.astro import AstroWindows
from aurum.decision.scorer import Pillar
from aurum.kernels.barwindow import BarWindow
from aurum.kernels.gann import GannEngine

class BarPillar:
    name: str
    def __call__(self, win: BarWindow, ts: int, price: float) -> Pillar | None: ...

class PivotFeed:
    threshold_ticks: float
    tick_size: float
    def __init__(self, threshold_ticks: float = 20.0, tick_size: float = 0.10) -> None: ...
    def pivots(self, win: BarWindow) -> npt.NDArray[np.void]: ...

class GannProvider(BarPillar):
    feed: PivotFeed
    engine: GannEngine
    def __init__(self, feed: PivotFeed, price_per_bar: float = 0.50, decimal_shift: int = 1) -> None: ...
    def levels_for(self, win: BarWindow) -> list[tuple[float, str]]: ...

class CycleProvider(BarPillar):
    feed: PivotFeed
    def __init__(self, feed: PivotFeed) -> None: ...

class AstroProvider(BarPillar):
    windows: AstroWindows
    def __init__(self) -> None: ...
    def prefetch(self, ts: int) -> bool: ...
