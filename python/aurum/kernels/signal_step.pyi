from collections.abc import Callable
from typing import Any

BUY: str
SELL: str
FLAT: str
RISK_VETOES: tuple[tuple[str, str], ...]

RiskInputs = dict[str, Any] | None

class BuilderCore:
    config: Any
    position: str
    seq: int
    _bars_since_change: int
    def step(self, direction: float, confidence: float, risk: RiskInputs | Callable[[], RiskInputs] = None,
             feed_degraded: str | None = None) -> tuple[str, tuple[str, ...], str | None] | None: ...
    def _veto(self, risk: RiskInputs | Callable[[], RiskInputs], feed_degraded: str | None) -> str | None: ...
