from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

class PeriodCount(NamedTuple):
    period: int
    anchor_bar: int
    anchor_kind: int
    bars_since: int
    cycle: int
    in_window: bool
    window_start: int
    window_end: int

def cycle_counts(
    pivot_bar_indices: Sequence[int] | npt.NDArray[np.int64],
    pivot_kinds: Sequence[int] | npt.NDArray[np.integer],
    current_bar: int,
    periods: Sequence[int] = (21, 45, 90),
    tolerance: int = 2,
    anchors: int = 3,
) -> list[PeriodCount]: ...
