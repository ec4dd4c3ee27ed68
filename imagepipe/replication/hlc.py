"""Hybrid logical clock: timestamps that follow wall time and never go back.

A timestamp is an int ``wall_ms << 16 | counter``: milliseconds of the wall
clock, and a counter that orders events within one millisecond (or while the
wall clock stands still or steps back).  ``now`` stamps a local event,
``observe`` a received one, so that every stamp a node makes is above every
stamp it has seen.  The wall clock is injected.
"""

import threading
import time

LIMIT = 1 << 63
_BITS = 16
_COUNTER_MAX = (1 << _BITS) - 1


def wall_ms(timestamp):
    """The wall-clock milliseconds of ``timestamp``."""
    return timestamp >> _BITS


def counter(timestamp):
    """The logical counter of ``timestamp``."""
    return timestamp & _COUNTER_MAX


def _join(ms, count):
    # A full counter borrows the next millisecond rather than wrapping.
    if count > _COUNTER_MAX:
        ms, count = ms + 1, 0
    return ms << _BITS | count


def _check(value, name):
    if type(value) is not int or not 0 <= value < LIMIT:
        raise ValueError(f"{name}: a timestamp is an integer in 0..2**63-1, got {value!r}")


class HybridClock:
    """A node's hybrid logical clock; ``last`` is the latest timestamp it gave.

    ``wall`` returns seconds (``time.time``); ``last`` resumes a clock from a
    stored timestamp.  Safe to share between threads.
    """

    def __init__(self, wall=time.time, last=0):
        _check(last, "last")
        self._wall = wall
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self):
        """The latest timestamp this clock gave."""
        return self._last

    def now(self):
        """A timestamp for a local event, above every one given or observed so far."""
        with self._lock:
            physical = int(self._wall() * 1000)
            last_ms = wall_ms(self._last)
            if physical > last_ms:
                return self._advance(physical << _BITS)
            return self._advance(_join(last_ms, counter(self._last) + 1))

    def observe(self, remote):
        """A timestamp for receiving an event stamped ``remote``, above it and ``last``."""
        _check(remote, "remote")
        with self._lock:
            physical = int(self._wall() * 1000)
            last_ms, last_count = wall_ms(self._last), counter(self._last)
            remote_ms, remote_count = wall_ms(remote), counter(remote)
            ms = max(last_ms, remote_ms, physical)
            if ms == last_ms == remote_ms:
                count = max(last_count, remote_count) + 1
            elif ms == last_ms:
                count = last_count + 1
            elif ms == remote_ms:
                count = remote_count + 1
            else:
                count = 0
            return self._advance(_join(ms, count))

    def _advance(self, timestamp):
        if timestamp >= LIMIT:
            raise OverflowError("hybrid clock: no timestamp is left below 2**63")
        self._last = timestamp
        return timestamp
