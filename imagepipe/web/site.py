"""The Twisted site: XML-RPC at ``/`` (and ``/RPC2``), the tree at ``/images/``,
and ``/status``.

``LimitedRequest`` enforces ``max_request_bytes`` while the body arrives: a
declared ``Content-Length`` over the limit is answered 413 from the headers
alone and the connection closed; a body that grows past the limit (chunked
uploads) is cut off with 413.  The bodies of all connections together may
hold ``max_body_bytes_in_flight`` (then 503 with ``Retry-After``).

``ImagepipeSite`` counts open connections, all together and per client
address, and answers one past ``max_connections`` (503) or
``max_client_connections`` (429) before a channel is built; the channels
(``channel.Channel``) keep the request deadlines.
"""

import json
from collections import Counter

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.web.http import Request

from imagepipe.config import ClientLimits
from imagepipe.web.channel import Channel, Refusal, canned
from imagepipe.errors import Busy
from imagepipe.web.operator import wants_page
from imagepipe.web.statuses import ErrorResource, answer_when_done, error_page, reason, refused

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
    reserved = 0  # bytes of the site's body budget this request holds

    def setResponseCode(self, code, message=None):
        super().setResponseCode(code, reason(code) if message is None else message)

    def gotLength(self, length):
        self.received = 0
        site = self.channel.site
        if length is not None and length > site.max_request_bytes:
            self._refuse(413, f"declared body of {length} bytes exceeds max_request_bytes "
                              f"({site.max_request_bytes})")
            return
        if length and not self._reserve(length):
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        site = self.channel.site
        if self.received > site.max_request_bytes:
            self._refuse(413, f"body past {self.received} bytes exceeds max_request_bytes "
                              f"({site.max_request_bytes})")
            return
        if self.received > self.reserved and not self._reserve(self.received - self.reserved):
            return  # a chunked body: reserved as it arrives
        Request.handleContentChunk(self, data)

    def _reserve(self, size):
        """Hold ``size`` more bytes of the site's body budget, or refuse with 503."""
        site = self.channel.site
        if site.body_bytes + size > site.client_limits.max_body_bytes:
            self._refuse(503, f"request bodies in flight would exceed max_body_bytes_in_flight "
                              f"({site.client_limits.max_body_bytes})", retry_after=5)
            return False
        site.body_bytes += size
        self.reserved += size
        return True

    def _release(self):
        self.channel.site.body_bytes -= self.reserved
        self.reserved = 0

    def _refuse(self, status, message, retry_after=None):
        """Answer ``status`` now, without reading the body, and close the connection."""
        self.refused = True
        self._release()
        if self.content is not None:
            self.content.close()
        self.content = _Discard()
        self.channel.refuse(canned(status, message, retry_after=retry_after))

    def process(self):
        if self.refused:
            return  # answered already, and the connection is closing
        self._release()  # the body is complete: it is the request's own now
        server.Request.process(self)

    def connectionLost(self, reason):
        self._release()
        super().connectionLost(reason)


class Status(resource.Resource):
    """``GET /status``: JSON with the whole state of the node, for load balancers and people.

    Made in a worker thread (the cache's index and the journal are on disk):
    the node, its work in flight against capacity, the reactor's lag, the
    result cache, render processes, and each replication peer.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, workers, version, renderer=None, lag=None, about=None, replica=None,
                 links=None, rpc=None):
        super().__init__()
        self.rpc = rpc
        self.reporter = getattr(rpc, "reporter", None)  # Sentry, for an unexpected 500
        self.workers = workers
        self.version = version
        self.renderer = renderer
        self.lag = lag  # imagepipe.lag.LagProbe
        self.about = about or {}  # node name, engine, formats, backend
        self.replica = replica
        self.links = links

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if self.workers.closing:
            request.setResponseCode(503)
        seconds = request.args.get(b"lag_seconds", [b"60"])[0]
        if not seconds.isdigit() or not 1 <= int(seconds) <= 60:
            return error_page(request, 400, "lag_seconds: expected a whole number 1..60")
        site = request.channel.site
        now = {"connections": site.connections, "body_bytes_in_flight": site.body_bytes,
               "reactor_lag": self.lag.summary(int(seconds)) if self.lag else None}
        try:
            d = self.workers.lookups.submit(self._status, now, 1)
        except Busy:  # /status answers even when busy: what is in memory, on the reactor
            d = defer.maybeDeferred(self._status, now, 0, False)
        return answer_when_done(request, d, b"application/json", self.log, self.reporter)

    def _status(self, now, own, disk=True):
        """The status; ``own`` is this request's own lookup, not counted in the lane;
        without ``disk``, what the cache's index and the journal say is left out."""
        calls, renders = self.workers.writes, self.workers.renders
        status = dict(self.about, version=self.version)
        status.update({
            "in_flight": calls.in_flight,
            "capacity": calls.capacity,
            "threads": calls.threads,
            "renders": {"in_flight": renders.in_flight, "capacity": renders.capacity,
                        "threads": renders.threads},
            "lookups": {"in_flight": self.workers.lookups.in_flight - own,
                        "threads": self.workers.lookups.threads},
            "shutting_down": self.workers.closing,
            "connections": now["connections"],
            "body_bytes_in_flight": now["body_bytes_in_flight"],
        })
        if now["reactor_lag"] is not None:
            status["reactor_lag"] = now["reactor_lag"]
        if self.rpc is not None:
            status["calls_answered"] = dict(self.rpc.answered)
        if self.renderer is not None:
            status["renders"].update(
                fetching=self.renderer.fetching, clients=len(self.renderer.by_client),
                max_client_renders=self.renderer.settings.max_client_renders)
            status["on_the_fly"] = dict(self.renderer.counts)
            cache = self.renderer.cache
            if cache is not None and disk:
                status["cache"] = cache.state()
            processes = getattr(self.renderer.engine, "processes", None)
            if processes is not None:
                status["render_processes"] = processes.state()
        if self.replica is not None and disk:
            status["replication"] = self._replication()
        return json.dumps(status).encode()

    def _replication(self):
        replica = self.replica
        applied = replica.applied()
        journal = replica.journal
        found = {"published_sequence": applied.get(replica.node, 0), "applied": applied,
                 "journal": {"bytes": journal.size_bytes(),
                             "oldest_record": journal.first_number,
                             "newest_record": journal.last_number}}
        if self.links is not None:
            found["peers"] = [
                {"endpoint": peer.endpoint, "up": peer.up,
                 "last_heartbeat_seconds_ago": peer.silent_for, "lag_seconds": peer.lag,
                 "highest_applied": max(peer.applied.values(), default=0),
                 "behind": sum(max(0, seq - applied.get(origin, 0))
                               for origin, seq in peer.applied.items()
                               if origin != replica.node)}
                for peer in self.links.peers()]
        return found


class MetricsPage(resource.Resource):
    """``GET /metrics``: the Prometheus text format, made in a worker thread.

    Behind the XML-RPC credentials when auth is on, unless ``[metrics] open``.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, metrics, workers, rpc, open_to_all=False):
        super().__init__()
        self.metrics = metrics
        self.workers = workers
        self.rpc = rpc  # its authenticator is the one in force (reloaded)
        self.open_to_all = open_to_all
        self.reporter = rpc.reporter  # Sentry, for an unexpected 500

    def render_GET(self, request):
        unauthorized = None if self.open_to_all else refused(request, self.rpc.authenticator)
        if unauthorized is not None:
            return unauthorized
        try:
            d = self.workers.lookups.submit(self.metrics.text)
        except Busy as error:
            return error_page(request, 503, str(error))

        # The text format every Prometheus reads (what generate_latest writes).
        return answer_when_done(request, d, CONTENT_TYPE_PLAIN_0_0_4.encode(), self.log,
                                self.reporter)


class MetricsRoot(resource.Resource):
    """The root of a ``[metrics] listen`` endpoint: ``/metrics``, and 404 for the rest."""

    def __init__(self, page):
        super().__init__()
        self.page = page

    def getChild(self, name, request):
        if name == b"metrics" and not request.postpath:
            return self.page
        return ErrorResource(404, "no such resource (only /metrics is served here)")


class Root(resource.Resource):
    """Dispatches ``/`` and ``/RPC2`` to XML-RPC, ``/images/`` to the tree, ``/status``,
    ``/health`` and each on-the-fly mount at its prefix."""

    def __init__(self, rpc, tree=None, status=None, health=None, mounts=None, metrics=None,
                 page=None, api=None):
        super().__init__()
        self.rpc = rpc
        self.metrics = metrics
        self.page, self.api = page, api  # the operator page and its JSON (web/operator.py)
        self.tree = tree
        self.status = status
        self.health = health
        self.mounts = mounts or {}  # first path segment (bytes) -> resource

    def getChild(self, name, request):
        if name == b"" and self.page is not None and wants_page(request):
            return self.page
        if name in (b"", b"RPC2"):
            return self.rpc
        if name == b"operator" and self.page is not None:
            return self.api if request.postpath[-1:] in ([b"images"], [b"urls"]) else self.page
        if name == b"images" and self.tree is not None:
            return self.tree
        if name == b"status" and self.status is not None:
            return self.status
        if name == b"health" and self.health is not None:
            return self.health
        if name == b"metrics" and self.metrics is not None:
            return self.metrics
        mount = self.mounts.get(name)
        if mount is not None:
            return mount
        return ErrorResource(404, "no such resource")


class ImagepipeSite(server.Site):
    """A site with the request body limit (changeable on reload) and its access log.

    ``access_log``: "-" logs each request to the twistd log, "" nowhere, any
    other value is a file written in the combined log format.
    """

    requestFactory = LimitedRequest
    protocol = Channel

    def __init__(self, root, max_request_bytes, access_log="-", client_limits=ClientLimits(),
                 **kwargs):
        if access_log not in ("", "-"):
            kwargs["logPath"] = access_log
        super().__init__(root, **kwargs)
        self.max_request_bytes = max_request_bytes
        self.access_log = access_log
        self.client_limits = client_limits
        self.connections = 0
        self.by_client = Counter()  # client address -> open connections
        self.body_bytes = 0  # of request bodies being received, all connections

    def reload(self, config):
        """Take a reloaded config's body limit and client limits."""
        self.max_request_bytes = config.network.max_request_bytes
        self.client_limits = config.network.clients

    def buildProtocol(self, addr):
        limits = self.client_limits
        host = getattr(addr, "host", None)
        if self.connections >= limits.max_connections:
            return Refusal(canned(503, f"max_connections ({limits.max_connections}) are "
                                       f"open", retry_after=1), self.reactor.callLater)
        client = None if host is None or limits.exempts(host) else host
        if client is not None and self.by_client[client] >= limits.max_client_connections:
            return Refusal(canned(429, f"this address holds max_client_connections "
                                       f"({limits.max_client_connections}) open",
                                  retry_after=1), self.reactor.callLater)
        channel = super().buildProtocol(addr)
        channel.client = client
        self.connections += 1
        if client is not None:
            self.by_client[client] += 1
        return channel

    def connection_closed(self, channel):
        """Called by a channel built here once its connection is gone."""
        self.connections -= 1
        if channel.client is not None:
            self.by_client[channel.client] -= 1
            if not self.by_client[channel.client]:
                del self.by_client[channel.client]

    def log(self, request):
        if self.access_log:
            super().log(request)
