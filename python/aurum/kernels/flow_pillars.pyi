from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from aurum.decision.scorer import Pillar

def qmo(flow: npt.NDArray[np.void], pressure: dict[str, Any] | None, sweeps: npt.NDArray[np.void],
        zones: npt.NDArray[np.void], price: int, tick: int, near_ticks: int = 10) -> Pillar | None: ...
def imo(icebergs: npt.NDArray[np.void], zones: npt.NDArray[np.void], price: int, tick: int, mbo: bool,
        near_ticks: int = 30) -> Pillar | None: ...
def combine(name: str, comps: Sequence[tuple[float, float, str]]) -> tuple[float, float] | None: ...
