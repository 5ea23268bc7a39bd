"""``aurum gateway``: a local Databento Live Subscription Gateway.

It speaks the live protocol exactly as the official clients expect (databento.md §1-2), so
``databento.Live(key, gateway="127.0.0.1", port=N)`` streams DBN files, and later the
simulator, through it. Modules:

* ``control``: the handshake lines as self-parsing dataclasses (shared with our own client);
* ``records``: the DBN bytes the gateway makes (metadata, system/error/mapping, snapshots);
* ``sources``: the ``Source`` protocol, symbol resolution and the DBN file source;
* ``faults``: fault injection specs;
* ``server``: the asyncio server and one ``Session`` per connection;
* ``cli``: the ``aurum gateway`` command.
"""

from aurum.gateway.control import (
    AuthRequest, AuthResponse, Challenge, ControlError, Greeting, SessionStart, SubscriptionRequest,
)

__all__ = [
    "AuthRequest", "AuthResponse", "Challenge", "ControlError", "Greeting", "SessionStart",
    "SubscriptionRequest",
]
