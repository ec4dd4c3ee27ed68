"""On-the-fly resizing: one renderer behind every dialect's mount (``web/mount.py``).

A ``Mount`` turns a request into a ``Request(source, Transform)`` and asks
the ``Renderer``, which answers from the result cache
(``imagepipe.web.cache``) when the source has not changed, and otherwise
fetches the source, renders it with the engine in the worker pool and
stores the result.  Concurrent identical requests share one render
(single-flight).  Errors become statuses in one place for all of HTTP,
``imagepipe.web.statuses``.
"""

import dataclasses
import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from imagepipe.errors import Busy
from imagepipe.imaging import EncodeOptions
from imagepipe.imaging.formats import by_name
from imagepipe.metrics import Metrics
from imagepipe.web.signing import canonical_path
from imagepipe.web.sources import Fetched

# A cache hit up to this size is read into memory by the worker that looked
# it up; a larger one is streamed from the file that worker opened, as the
# socket takes it, so a client that does not read holds no more than this.
INLINE_BYTES = 64 << 10


@dataclass(frozen=True)
class Result:
    """What to answer: a cached file (``entry``) or bytes rendered but not cached."""

    format: object  # imagepipe.imaging.formats.Format
    entry: object = None  # imagepipe.web.cache.Entry, as the file opened for it is
    data: bytes = b""
    modified: float | None = None
    etag: str = ""  # of uncached bytes: a hash of them
    handle: object = None  # a hit too large to hold: its file, opened, to stream
    rendered: bool = False  # made by this request's render (not found in the cache)


class Renderer:
    """Answers parsed requests from the cache or by rendering; counts what it did."""

    log = Logger()

    def __init__(self, engine, workers, cache, sources, settings, metrics=None,
                 reporter=None):
        self.engine = engine  # an Engine, or a ProcessEngine rendering in children
        self.metrics = metrics if metrics is not None else Metrics()
        self.reporter = reporter  # imagepipe.reporting.Reporter (Sentry), or None
        self.workers = workers
        self.cache = cache  # ResultCache, or None when the cache is off
        self.sources = sources  # {"tree": StoredSource, "s3": StoredSource, "origins": ...}
        self.settings = settings  # HttpSettings
        self.defaults = EncodeOptions(quality=settings.quality)
        self.counts = {"renders": 0, "cache_hits": 0, "shared": 0, "errors": 0}
        self.fetching = 0  # origin fetches in flight
        self.by_client = Counter()  # client address -> renders it started, in flight
        self._flights = {}

    def accepted(self, accept_header):
        """Formats ``format:auto`` may pick for a client sending ``accept_header``."""
        offered = _accept(accept_header)
        wanted = (("avif",) if self.settings.auto_avif else ()) + ("webp",)
        return tuple(name for name in wanted
                     if f"image/{name}" in offered and name in self.engine.formats)

    def answer(self, kind, request, name, accept, suffix="", client=None, body=True):
        """A Deferred of the ``Result`` for a parsed ``request`` from source ``kind``.

        ``name`` is its cache name (None: not cacheable); ``accept`` the
        formats ``format:auto`` may use, ``suffix`` what they make of the
        name.  The cache is looked up in a worker thread (the index is
        SQLite, the source's version a file stat); a hit carries the file's
        bytes when ``body`` is wanted and the file is small.  A new name for
        a picture already cached (another spelling of the same URL) is
        linked to it instead of rendered.  A render the request starts
        counts against ``client`` (an address; None: not counted) until it
        lands, up to ``max_client_renders``.
        """
        source = self.sources[kind]
        key = cache_key(kind, request, suffix)
        if self.cache is None or name is None:
            return self._miss(source, request, name, key, accept, client)
        try:
            d = self.workers.lookups.submit(self._cached, source, request.source, name, key,
                                            body, client=client)
        except Busy as error:
            return defer.fail(error)

        def looked_up(hit):
            self.metrics.cache(hit is not None)
            if hit is None:
                return self._miss(source, request, name, key, accept, client)
            self.counts["cache_hits"] += 1
            return hit

        return d.addCallback(looked_up)

    def _cached(self, source, path, name, key, body):
        """In a worker: the ``Result`` of a cache hit on ``name``, or None for a miss.

        The file is opened here and described by what was opened (its
        ETag and length are those of the bytes sent); up to ``INLINE_BYTES``
        are read here, a larger one is handed over open, to be streamed.
        """
        started = time.perf_counter()
        try:
            return self._looked_up(source, path, name, key, body)
        finally:
            self.metrics.span("cache", time.perf_counter() - started)

    def _looked_up(self, source, path, name, key, body):
        current = source.version(path)
        if current is None and source.versions_known:  # gone (a change made elsewhere)
            self.cache.invalidate([path])
            return None
        entry = self.cache.lookup(name)
        if entry is not None and entry.key != key:
            entry = None  # made for what this URL meant before (a dialect changed): render anew
        if entry is not None and (current is None or current == entry.version):
            self.cache.touch(name)
        else:
            entry = self.cache.share(name, key, current)
        if entry is None:
            return None
        try:
            handle = open(entry.path, "rb")
        except OSError:  # evicted since the lookup: render it again
            return None
        info = os.fstat(handle.fileno())
        entry = dataclasses.replace(entry, size=info.st_size, mtime=info.st_mtime)
        if not body:
            handle.close()
            return Result(by_name(entry.format), entry=entry)
        if info.st_size > INLINE_BYTES:
            return Result(by_name(entry.format), entry=entry, handle=handle)
        with handle:
            return Result(by_name(entry.format), entry=entry, data=handle.read())

    def _miss(self, source, request, name, key, accept, client):
        """Render ``request``, or join the identical render in flight."""
        waiting = self._flights.get(key)
        if waiting is not None:
            self.counts["shared"] += 1
            d = defer.Deferred()
            waiting.append(d)
            return d
        if client is not None:
            if self.by_client[client] >= self.settings.max_client_renders:
                return defer.fail(Busy(
                    f"this client has max_client_renders "
                    f"({self.settings.max_client_renders}) renders in flight; retry later"))
            self.by_client[client] += 1
        self._flights[key] = []
        d = self._render(source, request, name, key, accept, client)
        d.addBoth(self._land, key, client)
        return d

    def _land(self, outcome, key, client):
        if client is not None:
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]
        if isinstance(outcome, Result):
            self.counts["renders" if outcome.rendered else "cache_hits"] += 1
        for waiting in self._flights.pop(key):
            if isinstance(outcome, Failure):
                waiting.errback(outcome)
            else:
                waiting.callback(outcome)
        return outcome

    def _render(self, source, request, name, key, accept, client):
        renders = self.workers.renders
        try:
            if source.blocking:  # the job reads the source itself
                return renders.submit(self._job, source, None, request, name, key, accept,
                                      time.perf_counter(), client=client)
            # Fetches count against the same admission as renders: a source
            # held in memory waiting for a thread is a render in flight.
            renders.admit(waiting=self.fetching)
        except Busy as error:
            return defer.fail(error)
        self.fetching += 1
        started = time.perf_counter()
        d = source.fetch(request.source)

        def fetched(result):
            self.fetching -= 1
            self.metrics.span("fetch", time.perf_counter() - started)
            return result

        d.addBoth(fetched)
        d.addCallback(lambda data: renders.submit(self._job, source, data, request, name, key,
                                                  accept, time.perf_counter(), client=client))
        return d

    def _job(self, source, fetched, request, name, key, accept, queued):
        """In a worker: read (tree), render, store; the ``Result``.

        An identical request that looked the cache up before this one's
        render was stored, and arrived once it had landed, finds it here
        rather than rendering it again.  Its bytes are read whole: every
        request sharing the flight (a HEAD's or a GET's) takes the same one.
        """
        started = time.perf_counter()
        self.metrics.span("queue", started - queued)
        if self.cache is not None and name is not None:
            hit = self._cached(source, request.source, name, key, body=True)
            if hit is not None and hit.handle is not None:
                with hit.handle:  # the requests sharing this flight cannot share one file
                    hit = dataclasses.replace(hit, data=hit.handle.read(), handle=None)
            if hit is not None:
                return hit
        if fetched is None:  # a tree source: the engine reads it (in a child, the child does)
            rendered, version, modified = self.engine.transform_source(
                source.storage, request.source, request.transform, self.defaults, accept)
            fetched = Fetched(b"", version, modified)
        else:
            rendered = self.engine.transform(fetched.data, request.transform, self.defaults,
                                             accept)
        stored = time.perf_counter()
        for span, seconds in rendered.spans.items():
            self.metrics.span(span, seconds)
        self.metrics.span("render", stored - started - rendered.spans.get("fetch", 0.0))
        entry = None
        if self.cache is not None and name is not None:
            entry = self.cache.store(name, key, request.source, fetched.version, rendered.data,
                                     rendered.format.name)
            self.metrics.span("cache_store", time.perf_counter() - stored)
            if entry is not None and source.blocking and source.versions_known \
                    and source.version(request.source) != fetched.version:
                # Replaced while rendering: the invalidation may have run already.
                self.cache.invalidate([request.source])
                entry = None
        etag = "" if entry else f'"{hashlib.sha256(rendered.data).hexdigest()[:24]}"'
        return Result(rendered.format, entry=entry, data=rendered.data,
                      modified=fetched.modified, etag=etag, rendered=True)


def cache_key(kind, request, suffix=""):
    """What a cached result holds: one picture of one source, whatever URL asked for it."""
    return f"{canonical_path(kind, request)}\n{suffix}"


def _accept(header):
    """The media types an ``Accept`` header admits (q > 0), lowercased."""
    if not header:
        return frozenset()
    types = set()
    for item in header.decode("latin-1").split(","):
        kind, *params = item.strip().split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            types.add(kind.strip().lower())
    return frozenset(types)
