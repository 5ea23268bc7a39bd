"""Market-data feeds of the daemon. ``lsg``: Databento's Live Subscription Gateway."""

from aurum.feeds.backoff import Backoff
from aurum.feeds.lsg import LsgAuthError, LsgClient, LsgError, LsgFatalError, LsgStats, lsg_host

__all__ = ["Backoff", "LsgAuthError", "LsgClient", "LsgError", "LsgFatalError", "LsgStats", "lsg_host"]
