"""Wakes the API's one poller when the daemon publishes.

A thread blocks in ``ShmReader.wait`` on the segment's notify futex (the daemon bumps it at
every signal and state update) and sets an asyncio event on the poller's loop. Without it the
poller looks only every ``poll_interval_s`` (50 ms by default), so a WebSocket client saw a
signal up to that much late; with it, as soon as the loop gets to run. The poller's timer
stays: it is what notices a daemon that publishes nothing (heartbeat age) and a segment that
is missing, and it is the whole mechanism where futexes are unavailable.

The thread has its own reader (own mapping): it only waits, and drains the ring so the next
wait blocks; the hub's reader, on the loop, does all the reading that is served.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from aurum.consumer import ShmError, ShmReader

log = logging.getLogger("aurum.api")

WAIT_S = 0.25  # one futex wait at most: how long stop() may take
RETRY_S = 0.5  # between attempts to open a missing or unusable segment


class PublishWaiter:
    def __init__(self, shm_name: str, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self.shm_name, self.loop, self.event = shm_name, loop, event
        self.wakeups = 0  # publications (or batches of them) that woke the poller
        self.errors = 0
        self.ready = threading.Event()  # set once the segment is open: no publication is missed after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aurum-api-notify", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Asks the thread to end (within WAIT_S) without waiting for it."""
        self._stop.set()

    def stop(self) -> None:
        """Ends the thread and waits for it: blocking, so from a loop use ``asyncio.to_thread``."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * WAIT_S + RETRY_S)

    def _run(self) -> None:
        reader: ShmReader | None = None
        last_log = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if reader is None:
                        try:
                            reader = ShmReader(self.shm_name)
                        except (ShmError, OSError, ValueError):
                            # Missing or not initialised yet: the poller's timer reports it.
                            self._stop.wait(RETRY_S)
                            continue
                        self.ready.set()
                    if not reader.wait(WAIT_S):
                        continue
                    # Skip, don't read: the hub reads. Unread signals (or a ring being
                    # re-initialised, which poll() would not move past) would make every
                    # following wait return at once.
                    reader.skip()
                except (ShmError, OSError, ValueError):
                    if reader is not None:
                        reader.close()
                    reader = None
                    continue
                except Exception:  # a bug must not silently turn the stream back into polling
                    self.errors += 1
                    if time.monotonic() - last_log > 60:
                        last_log = time.monotonic()
                        log.exception("shared-memory wake-up thread failed (repeats silenced for 60 s); retrying")
                    if reader is not None:
                        reader.close()
                    reader = None
                    self._stop.wait(RETRY_S)
                    continue
                self.wakeups += 1
                self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # call_soon_threadsafe on a closed loop: the server is stopping
            pass
        finally:
            if reader is not None:
                reader.close()
