"""One URL dialect at its prefix, as a Twisted resource: parse, check, answer over HTTP.

``Mount`` turns a request into a ``Request(source, Transform)`` with the
dialect's pure parser, checks its signature, asks the ``Renderer``
(``imagepipe.web.render``) for the result and answers it: headers,
conditional requests, ``X-Accel-Redirect``, or the bytes (streamed for a
large cached file).  Errors are answered through ``web/statuses.py``.
"""

import time
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from twisted.logger import Logger
from twisted.web import http, resource, server
from twisted.web.static import NoRangeStaticProducer

from imagepipe.imaging.transform import BadTransform
from imagepipe.web import statuses
from imagepipe.web.cache_keys import cache_name
from imagepipe.web.dialects import NotAllowed
from imagepipe.web.signing import BadSignature, canonical_path
from imagepipe.web.statuses import error_page, status_of


class Mount(resource.Resource):
    """One URL dialect at its prefix: parse, check, answer."""

    isLeaf = True
    log = Logger()

    def __init__(self, mount, dialect, renderer, signer=None, accel_redirect=""):
        super().__init__()
        self.mount = mount  # MountSettings
        self.dialect = dialect  # the dialect module (web/dialects/)
        self.parse = dialect.parse  # (path, query, settings) -> Request
        self.reads_query = dialect.READS_QUERY
        self.renderer = renderer
        self.signer = signer
        self.accel_redirect = accel_redirect

    def render_GET(self, request):
        self._count(request)
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

    def _count(self, request):
        """Count the request in /metrics once it is answered (or its client left)."""
        metrics, started = self.renderer.metrics, time.perf_counter()
        metrics.in_progress.inc()

        def answered(outcome):
            metrics.in_progress.dec()
            if outcome is not None:  # the client went away first: nginx's 499
                metrics.request(499, time.perf_counter() - started)
                return
            kind = request.responseHeaders.getRawHeaders(b"content-type", [b""])[0]
            fmt = kind.decode("latin-1").partition("image/")[2] or None
            metrics.request(request.code, time.perf_counter() - started, fmt)

        request.notifyFinish().addBoth(answered)

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
        self.renderer.metrics.error(type(error).__name__)
        if failure is None:
            return error_page(request, status_of(error), str(error))
        statuses.failed(request, error, self.log, failure, self.renderer.workers.closing,
                        self.renderer.reporter)
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
