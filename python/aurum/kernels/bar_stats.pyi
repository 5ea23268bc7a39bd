import numpy as np
import numpy.typing as npt

def true_range(high: npt.NDArray[np.int64], low: npt.NDArray[np.int64], close: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...
def wilder_atr(
    high: npt.NDArray[np.int64], low: npt.NDArray[np.int64], close: npt.NDArray[np.int64], period: int = 14
) -> npt.NDArray[np.float64]: ...
