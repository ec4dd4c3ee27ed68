"""How late the reactor runs: a timer every 10 ms that records how late it fires.

Anything blocking on the reactor (a file read, an SQLite query, a lock a
worker thread holds) makes every connection wait that long; the probe sees
it as lateness.  ``/status`` reports the lateness over the last minute, or
over the last ``?lag_seconds=N``.
"""

from collections import deque

from twisted.application.service import Service

INTERVAL = 0.010  # seconds between ticks
WINDOW = 60.0  # seconds of ticks kept


class LagProbe(Service):
    """A timer on ``reactor`` every ``interval`` keeping how late each firing was (seconds)."""

    def __init__(self, reactor, interval=INTERVAL, window=WINDOW):
        self.reactor = reactor
        self.interval = interval
        self.samples = deque(maxlen=int(window / interval))
        self._due = None
        self._timer = None

    def startService(self):
        Service.startService(self)
        self._schedule()

    def stopService(self):
        Service.stopService(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _schedule(self):
        self._due = self.reactor.seconds() + self.interval
        self._timer = self.reactor.callLater(self.interval, self._tick)

    def _tick(self):
        self.samples.append(max(0.0, self.reactor.seconds() - self._due))
        self._schedule()

    def summary(self, seconds=WINDOW):
        """Milliseconds of lateness over the last ``seconds``: p50, p99, max, tick count."""
        count = min(len(self.samples), max(1, round(seconds / self.interval)))
        ordered = sorted(list(self.samples)[-count:])
        if not ordered:
            return {"ticks": 0}

        def at(fraction):
            return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)

        return {"ticks": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99),
                "max_ms": round(ordered[-1] * 1000, 2)}
