"""Where on-the-fly sources come from: a storage (the tree, a bucket), or HTTP origins.

Every source provides ``ISource`` (``version`` and ``blocking``), and one
of the two ways of getting the bytes: ``IReadSource`` (a storage: read in
the render job's thread) or ``IFetchSource`` (HTTP origins: fetched first,
asynchronously).  Either raises or fails with ``SourceMissing`` when there
is no such source.
"""

import threading
import time
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.threads import blockingCallFromThread
from zope.interface import Attribute, Interface, implementer

from imagepipe.errors import OriginError, OriginTimeout, SourceMissing


@dataclass(frozen=True)
class Fetched:
    """The bytes of a source and the version they are."""

    data: bytes
    version: str
    modified: float | None = None  # seconds since the epoch, when known


class ISource(Interface):
    """Where the sources of one kind come from."""

    blocking = Attribute("True: read in the render job (IReadSource); False: fetched "
                         "first (IFetchSource).")
    versions_known = Attribute("True: ``version`` None means there is no such source "
                               "(its cached results go); False: it means unknown.")

    def version(path):
        """A cheap text naming the current content of ``path``, checked on every request
        to tell whether a cached result is still good; None when it cannot be known
        without fetching (a cached result is then trusted until it is evicted)."""


class IReadSource(ISource):
    """Sources read synchronously, in the render job's thread."""

    storage = Attribute("The IStorage the sources are in (engines read from it).")

    def read(path):
        """``Fetched`` for ``path``; raises ``SourceMissing`` when there is none."""


class IFetchSource(ISource):
    """Sources fetched asynchronously before the render job."""

    def fetch(path):
        """A Deferred of ``Fetched`` for ``path``; fails with ``SourceMissing``, or
        ``OriginError`` / ``OriginTimeout`` / ``SourceTooLarge``."""


@implementer(IReadSource)
class StoredSource:
    """Sources are what a storage (``IStorage``: a ``Tree``, a ``Bucket``) holds.

    ``revalidate``: for that many seconds after a path's version was asked,
    the answer is taken as still true (a bucket is then not asked on every
    cache hit); a change made through this node forgets it at once.
    """

    blocking = True

    def __init__(self, storage, revalidate=0.0, clock=time.monotonic, versions_known=True):
        self.storage = storage
        self.versions_known = versions_known
        self.revalidate = revalidate
        self.clock = clock
        self._known = {}  # path -> (version, when asked)
        self._lock = threading.Lock()
        if revalidate:
            storage.listeners.append(self._forget)

    def version(self, path):
        """The version of ``path`` now (or as asked less than ``revalidate`` s ago)."""
        if not self.revalidate:
            return self.storage.version(path)
        now = self.clock()
        with self._lock:
            known = self._known.get(path)
        if known is not None and now - known[1] < self.revalidate:
            return known[0]
        version = self.storage.version(path)
        with self._lock:
            self._known[path] = (version, now)
            if len(self._known) > 100_000:  # bounded: the oldest half goes
                for stale in sorted(self._known, key=lambda p: self._known[p][1])[:50_000]:
                    del self._known[stale]
        return version

    def read(self, path):
        """``Fetched`` for ``path``; ``SourceMissing`` when the storage has none."""
        return Fetched(*self.storage.source(path))

    def _forget(self, change):
        with self._lock:
            for path in change.paths:
                self._known.pop(path, None)


class FallingBack:
    """A storage's sources, and the HTTP origins' where it has none or fails (phizer's
    master and slaves, with a bucket as the master: ``[s3] origins_fallback``).

    Offers what a ``StoredSource`` reads of a storage.  ``version`` is the
    storage's, None where it has none or fails (then unknown: the origins may
    have it); ``source`` blocks its thread while the reactor fetches from the
    origins.
    """

    local_root = None

    def __init__(self, storage, origins, reactor):
        self.storage = storage
        self.origins = origins  # imagepipe.web.origins.client.HttpOrigins
        self.reactor = reactor
        self.listeners = storage.listeners

    def version(self, path):
        try:
            return self.storage.version(path)
        except (OriginError, OriginTimeout):
            return None

    def source(self, path):
        try:
            return self.storage.source(path)
        except (SourceMissing, OriginError, OriginTimeout):
            fetched = blockingCallFromThread(self.reactor, self.origins.fetch, path)
            return fetched.data, fetched.version, fetched.modified


@implementer(IFetchSource)
class OriginSource(Service):
    """Sources are fetched from HTTP origins (``imagepipe.web.origins.client.HttpOrigins``).

    A service: stopping it drops transfers and pooled connections.
    """

    blocking = False
    versions_known = False

    def __init__(self, origins):
        self.origins = origins

    def stopService(self):
        Service.stopService(self)
        return self.origins.close()

    def version(self, path):
        """Unknown without a request to the origin: None."""
        return None

    def fetch(self, path):
        """A Deferred of ``Fetched`` from the origins."""
        return self.origins.fetch(path)
