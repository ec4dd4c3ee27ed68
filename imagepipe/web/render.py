"""On-the-fly resizing over HTTP: a mount per URL dialect, one renderer behind them.

``Mount`` (a Twisted resource at a dialect's prefix) turns a request into a
``Request(source, Transform)`` with the dialect's pure parser, checks the
signature, and asks the ``Renderer``, which answers from the result cache
(``imagepipe.web.cache``) when the source has not changed, and otherwise
fetches the source, renders it with the engine in the worker pool and
stores the result.  Concurrent identical requests share one render
(single-flight).  Errors become statuses in one place for all of HTTP,
``imagepipe.web.statuses``.
"""

import dataclasses
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from twisted.web.static import NoRangeStaticProducer

from imagepipe.errors import Busy
from imagepipe.imaging import EncodeOptions
from imagepipe.imaging.formats import by_name
from imagepipe.web.cache_keys import cache_name
from imagepipe.web.dialects import NotAllowed
from imagepipe.web.signing import BadSignature, canonical_path
from imagepipe.web.sources import Fetched
from imagepipe.web import statuses
from imagepipe.web.statuses import error_page, status_of
from imagepipe.imaging.transform import BadTransform

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

    def __init__(self, engine, workers, cache, sources, settings):
        self.engine = engine  # an Engine, or a ProcessEngine rendering in children
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
                                      client=client)
            # Fetches count against the same admission as renders: a source
            # held in memory waiting for a thread is a render in flight.
            renders.admit(waiting=self.fetching)
        except Busy as error:
            return defer.fail(error)
        self.fetching += 1
        d = source.fetch(request.source)

        def fetched(result):
            self.fetching -= 1
            return result

        d.addBoth(fetched)
        d.addCallback(lambda data: renders.submit(self._job, source, data, request, name, key,
                                                  accept, client=client))
        return d

    def _job(self, source, fetched, request, name, key, accept):
        """In a worker: read (tree), render, store; the ``Result``.

        An identical request that looked the cache up before this one's
        render was stored, and arrived once it had landed, finds it here
        rather than rendering it again.  Its bytes are read whole: every
        request sharing the flight (a HEAD's or a GET's) takes the same one.
        """
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
        entry = None
        if self.cache is not None and name is not None:
            entry = self.cache.store(name, key, request.source, fetched.version, rendered.data,
                                     rendered.format.name)
            if entry is not None and source.blocking \
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


class Mount(resource.Resource):
    """One URL dialect at its prefix: parse, check, answer."""

    isLeaf = True
    log = Logger()

    def __init__(self, mount, dialect, renderer, signer=None, accel_redirect=""):
        super().__init__()
        self.mount = mount  # MountSettings
        self.parse = dialect.parse  # (path, query, settings) -> Request
        self.reads_query = dialect.READS_QUERY
        self.renderer = renderer
        self.signer = signer
        self.accel_redirect = accel_redirect

    def render_GET(self, request):
        try:
            parsed, name, accept, suffix = self._parse(request)
        except (BadTransform, NotAllowed, BadSignature) as error:
            return self._error(request, error)
        limits = request.channel.site.client_limits
        address = request.getClientAddress()
        client = limits.client(getattr(address, "host", None),
                               _header(request, b"x-real-ip"),
                               _header(request, b"x-forwarded-for"))
        body = request.method != b"HEAD" and not self.accel_redirect
        d = self.renderer.answer(self.mount.source, parsed, name, accept, suffix, client, body)
        d.addCallback(self._send, request, parsed)
        d.addErrback(lambda failure: self._error(request, failure.value, failure))
        d.addErrback(self.log.failure, "answering {uri}", uri=request.uri)
        return server.NOT_DONE_YET

    render_HEAD = render_GET

    def _parse(self, request):
        """(Request, cache name, accepted formats, name suffix) from the URL, or a 400/403."""
        raw_path, _, raw_query = request.uri.partition(b"?")
        prefix = self.mount.prefix.encode("ascii")
        try:
            path = unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeError:
            raise BadTransform("path: not valid UTF-8 once percent-decoded") from None
        try:
            query = raw_query.decode("ascii")
        except UnicodeError:
            raise BadTransform("query: bytes outside ASCII must be percent-encoded") from None
        if "\0" in path:
            raise BadTransform("path: contains a NUL byte")
        rest = path[len(prefix):]
        if self.signer is not None:
            signature, slash, rest = rest.partition("/")
            if not slash or not signature:
                raise BadSignature("signature: missing (expected /<signature>/ after the "
                                   "prefix)")
        pairs = parse_qsl(query, keep_blank_values=True) if query else []
        parsed = self.parse(rest, pairs, self.mount.settings)
        if self.signer is not None:
            self.signer.verify(signature, canonical_path(self.mount.source, parsed))
        accept = ()
        if parsed.transform.format == "auto":
            accept = self.renderer.accepted(request.getHeader(b"accept"))
        suffix = (accept[0] if accept else "auto") if parsed.transform.format == "auto" else ""
        name = cache_name(path, query if self.reads_query else "", suffix)
        return parsed, name, accept, suffix

    def _send(self, result, request, parsed):
        try:
            self._respond(result, request, parsed)
        finally:
            if result.handle is not None and not result.handle.closed \
                    and not getattr(request, "producer", None):
                result.handle.close()  # not streamed: answered otherwise, or gone

    def _respond(self, result, request, parsed):
        if request.finished or request._disconnected:
            return
        auto = parsed.transform.format == "auto"
        request.setHeader(b"content-type", result.format.mime.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control",
                          f"max-age={int(self.renderer.settings.max_age)}".encode())
        if auto:
            request.setHeader(b"vary", b"Accept")
        entry = result.entry
        if entry is not None:
            tag, modified = entry.etag, entry.mtime
        else:
            tag, modified = result.etag, result.modified
        cached = request.setETag(tag.encode()) == http.CACHED
        if modified is not None:
            request.setHeader(b"last-modified", http.datetimeToString(int(modified)))
            if not cached and _not_modified_since(request, int(modified)):
                request.setResponseCode(http.NOT_MODIFIED)
                cached = True
        if cached:
            request.finish()
            return
        if entry is not None and self.accel_redirect:
            request.setHeader(b"x-accel-redirect",
                              (self.accel_redirect + quote(entry.file, safe="/:,=@")).encode())
            if auto:
                request.setHeader(b"x-imagepipe-vary", b"Accept")
            request.finish()
            return
        if result.data or entry is None or request.method == b"HEAD":
            length = len(result.data) if result.data or entry is None else entry.size
            request.setHeader(b"content-length", str(length).encode())
            if request.method != b"HEAD":
                request.write(result.data)
            request.finish()
            return
        # A hit too large to hold: streamed from the file the lookup opened.
        request.setHeader(b"content-length", str(entry.size).encode())
        NoRangeStaticProducer(request, result.handle).start()

    def _error(self, request, error, failure=None):
        """An error answer: at once (parsing, ``failure`` None) or once the work failed."""
        self.renderer.counts["errors"] += 1
        if failure is None:
            return error_page(request, status_of(error), str(error))
        statuses.failed(request, error, self.log, failure, self.renderer.workers.closing)
        return None


def _header(request, name):
    """A request header as text (latin-1, as HTTP/1.1 defines it), or None."""
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _not_modified_since(request, modified):
    """If-Modified-Since holds, and counts: only without If-None-Match (RFC 9110 13.1.3)."""
    since = request.getHeader(b"if-modified-since")
    if not since or request.getHeader(b"if-none-match"):
        return False
    try:
        return http.stringToDatetime(since.split(b";")[0]) >= modified
    except ValueError:
        return False


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
