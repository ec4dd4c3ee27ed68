"""The Twisted site: XML-RPC at ``/`` (and ``/RPC2``), the tree at ``/images/``,
and ``/status``.

``LimitedRequest`` enforces ``max_request_bytes`` while the body arrives: a
declared ``Content-Length`` over the limit is answered 413 from the headers
alone and the body is discarded unread; a body that grows past the limit
(chunked uploads) is cut off with 413.
"""

import json

from twisted.web import resource, server
from twisted.web.http import Request

from imagepipe.web.statuses import reason

_TOO_LARGE = (
    b"HTTP/1.1 413 " + reason(413) + b"\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


class _Discard:
    """Stands in for the body buffer of a refused request."""

    def write(self, data):
        pass

    def seek(self, *args):
        pass

    def read(self, *args):
        return b""

    def close(self):
        pass


class LimitedRequest(server.Request):
    """A request whose body may not exceed ``site.max_request_bytes``.

    Its statuses go out with their standard reason phrases.
    """

    refused = False

    def setResponseCode(self, code, message=None):
        super().setResponseCode(code, reason(code) if message is None else message)

    def gotLength(self, length):
        self.received = 0
        if length is not None and length > self.channel.site.max_request_bytes:
            self._refuse(f"declared body of {length} bytes")
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.channel.site.max_request_bytes:
            self._refuse(f"body past {self.received} bytes")
            self.channel.transport.loseConnection()
            return
        Request.handleContentChunk(self, data)

    def _refuse(self, what):
        self.refused = True
        if self.content is not None:
            self.content.close()
        self.content = _Discard()
        limit = self.channel.site.max_request_bytes
        body = (f"413 {reason(413).decode()}: {what} exceeds max_request_bytes "
                f"({limit})\n").encode()
        self.channel.transport.write(_TOO_LARGE % (len(body), body))

    def process(self):
        if self.refused:
            # The answer went out already; the body was read and thrown away.
            self.channel.transport.loseConnection()
            return
        server.Request.process(self)


class Status(resource.Resource):
    """``GET /status``: JSON with the calls in flight, for load balancers and people."""

    isLeaf = True

    def __init__(self, workers, version, renderer=None):
        super().__init__()
        self.workers = workers
        self.version = version
        self.renderer = renderer

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if self.workers.closing:
            request.setResponseCode(503)
        status = {
            "version": self.version,
            "in_flight": self.workers.in_flight,
            "capacity": self.workers.capacity,
            "threads": self.workers.threads,
            "shutting_down": self.workers.closing,
        }
        if self.renderer is not None:
            status["on_the_fly"] = dict(self.renderer.counts)
        return json.dumps(status).encode()


class Root(resource.Resource):
    """Dispatches ``/`` and ``/RPC2`` to XML-RPC, ``/images/`` to the tree, ``/status``,
    ``/health`` and each on-the-fly mount at its prefix."""

    def __init__(self, rpc, tree=None, status=None, health=None, mounts=None):
        super().__init__()
        self.rpc = rpc
        self.tree = tree
        self.status = status
        self.health = health
        self.mounts = mounts or {}  # first path segment (bytes) -> resource

    def getChild(self, name, request):
        if name in (b"", b"RPC2"):
            return self.rpc
        if name == b"images" and self.tree is not None:
            return self.tree
        if name == b"status" and self.status is not None:
            return self.status
        if name == b"health" and self.health is not None:
            return self.health
        mount = self.mounts.get(name)
        if mount is not None:
            return mount
        return resource.NoResource("No such resource.")


class ImagepipeSite(server.Site):
    """A site with the request body limit (changeable on reload) and its access log.

    ``access_log``: "-" logs each request to the twistd log, "" nowhere, any
    other value is a file written in the combined log format.
    """

    requestFactory = LimitedRequest

    def __init__(self, root, max_request_bytes, access_log="-", **kwargs):
        if access_log not in ("", "-"):
            kwargs["logPath"] = access_log
        super().__init__(root, **kwargs)
        self.max_request_bytes = max_request_bytes
        self.access_log = access_log

    def log(self, request):
        if self.access_log:
            super().log(request)
