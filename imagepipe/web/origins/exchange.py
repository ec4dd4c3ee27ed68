"""One GET of one URL: a vetted connection, the deadlines, a body under the cap.

A new connection goes to an address of the host that ``refused_address``
lets through, the host name resolved once so that a second DNS answer
cannot swap it (rebinding).  The Host header and, for https, the SNI name
and the certificate check use the host name of the URL.  A body is counted
as it arrives and the connection dropped past ``max_bytes``, whatever
``Content-Length`` said.  ``connect_timeout`` bounds resolving and
connecting, ``read_timeout`` the whole answer after that.
"""

import ipaddress

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import (Agent, PotentialDataLoss, RequestTransmissionFailed,
                                ResponseDone, ResponseFailed, ResponseNeverReceived)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory
from zope.interface import implementer

from imagepipe.errors import OriginError, OriginTimeout, SourceTooLarge
from imagepipe.web.origins.guard import refused_address

ERROR_PAGE_BYTES = 64 * 1024  # read to keep the connection; a longer one drops it


def _cancelled(failure):
    """True when ``failure`` is, or wraps, a cancellation."""
    if failure.check(defer.CancelledError):
        return True
    reasons = getattr(failure.value, "reasons", None) or ()
    return any(reason.check(defer.CancelledError) for reason in reasons)


class _OverLimit(Exception):
    """A body went past the bytes it was allowed."""


@implementer(IAgentEndpointFactory)
class Exchange:
    """One GET of one URL: vetted connection, deadlines, body under the cap.

    The read deadline runs from the request, is paused while a new
    connection is made (``connect_timeout`` bounds that) and starts again
    once it is up.  On expiry the request, or the body, is cancelled.
    """

    def __init__(self, origins, url, origin):
        self.origins = origins
        self.settings = origins.settings
        self.url = url
        self.origin = origin  # the host name from the configuration, for messages
        self.timer = None
        self.expired = False
        self.request = None

    def run(self):
        """A Deferred firing with (response, body); the body is None unless 200."""
        agent = Agent.usingEndpointFactory(self.origins.reactor, self, self.origins.pool)
        self._arm()
        headers = Headers({b"user-agent": [self.settings.user_agent.encode("ascii")]})
        self.request = defer.maybeDeferred(agent.request, b"GET", self.url.encode("ascii"),
                                           headers)
        self.request.addCallback(self._receive)
        self.request.addBoth(self._finish)
        return self.request

    def endpointForURI(self, uri):
        """Twisted's hook: the endpoint for a new connection to ``uri``."""
        return _VettedEndpoint(self, uri.scheme, uri.host.decode("ascii"), uri.port)

    def connecting(self):
        self._disarm()

    def connected(self):
        self._arm()

    def _arm(self):
        self._disarm()
        self.timer = self.origins.reactor.callLater(self.settings.read_timeout, self._expire)

    def _disarm(self):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _expire(self):
        self.timer = None
        self.expired = True
        self.request.cancel()

    def _receive(self, response):
        if response.code == 200:
            d = _read_body(response, self.settings.max_bytes)
            d.addCallback(lambda data: (response, data))
            return d
        # Reading a short error page keeps the connection for the next request.
        d = _read_body(response, ERROR_PAGE_BYTES)
        d.addErrback(lambda failure: failure.trap(_OverLimit, ResponseFailed))
        d.addCallback(lambda _: (response, None))
        return d

    def _finish(self, result):
        self._disarm()
        if not isinstance(result, Failure) or result.check(OriginError):
            return result
        if not self.expired and _cancelled(result):
            return Failure(defer.CancelledError())
        settings, origin = self.settings, self.origin
        if self.expired:
            raise OriginTimeout(f"origin {origin}: no complete answer within read_timeout "
                                f"({settings.read_timeout:g} s)")
        if result.check(defer.TimeoutError, error.TimeoutError):
            raise OriginTimeout(f"origin {origin}: no connection within connect_timeout "
                                f"({settings.connect_timeout:g} s)")
        if result.check(_OverLimit):
            raise SourceTooLarge(f"origin {origin}: the image is over max_bytes "
                           f"({settings.max_bytes})")
        if result.check(error.ConnectError):
            raise OriginError(f"origin {origin}: cannot connect")
        if result.check(ResponseNeverReceived, ResponseFailed, RequestTransmissionFailed):
            raise OriginError(f"origin {origin}: the answer broke off or was malformed")
        return result


@implementer(IStreamClientEndpoint)
class _VettedEndpoint:
    """Connects to the first address of a host that ``refused_address`` lets through."""

    def __init__(self, exchange, scheme, host, port):
        self.exchange = exchange
        self.settings = exchange.settings
        self.reactor = exchange.origins.reactor
        self.scheme = scheme
        self.host = host
        self.port = port

    def connect(self, factory):
        """Resolve, vet, connect: all within ``connect_timeout``."""
        self.exchange.connecting()
        try:
            d = defer.succeed([str(ipaddress.ip_address(self.host))])
        except ValueError:
            d = self.exchange.origins.resolver(self.host)
            d.addErrback(self._unresolved)
        d.addCallback(self._vet)
        d.addCallback(self._connect_first, factory)
        d.addTimeout(self.settings.connect_timeout, self.reactor)
        d.addCallback(self._connected)
        return d

    def _unresolved(self, failure):
        failure.trap(OSError)
        raise OriginError(f"origin {self.exchange.origin}: host name not found")

    def _vet(self, addresses):
        allow = self.settings.allow
        vetted = [a for a in addresses if refused_address(a, allow, self.host) is None]
        if vetted:
            return vetted
        if not addresses:
            raise OriginError(f"origin {self.exchange.origin}: host name not found")
        reason = refused_address(addresses[0], allow, self.host)
        self.exchange.origins.log.warn(
            "refused {host} at {address} ({reason}) for origin {origin}", host=self.host,
            address=addresses[0], reason=reason, origin=self.exchange.origin)
        raise OriginError(f"origin {self.exchange.origin}: address refused ({reason})")

    def _connect_first(self, addresses, factory):
        d = self._endpoint(addresses[0]).connect(factory)
        if len(addresses) > 1:
            d.addErrback(self._connect_next, addresses[1:], factory)
        return d

    def _connect_next(self, failure, addresses, factory):
        failure.trap(error.ConnectError)
        return self._connect_first(addresses, factory)

    def _endpoint(self, address):
        kind = TCP4ClientEndpoint if ipaddress.ip_address(address).version == 4 else \
            TCP6ClientEndpoint
        endpoint = kind(self.reactor, address, self.port, timeout=self.settings.connect_timeout)
        if self.scheme == b"https":
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = wrapClientTLS(optionsForClientTLS(self.host), endpoint)
        return endpoint

    def _connected(self, protocol):
        self.exchange.connected()
        return protocol


def _read_body(response, limit):
    """A Deferred firing with the body of ``response``, or failing with ``_OverLimit``."""
    finished = defer.Deferred(lambda _: body.transport.stopProducing())
    body = _CappedBody(limit, response.length, finished)
    response.deliverBody(body)
    return finished


class _CappedBody(Protocol):
    """Collects a response body; stops the connection past ``limit`` bytes.

    A declared length over the limit stops it before any byte is read.  A
    body without length that ends with the connection is complete.
    """

    def __init__(self, limit, declared, finished):
        self.limit = limit
        self.declared = declared
        self.finished = finished
        self.parts = []
        self.size = 0

    def connectionMade(self):
        if self.declared is not UNKNOWN_LENGTH and self.declared > self.limit:
            self._stop()

    def dataReceived(self, data):
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._stop()
            return
        self.parts.append(data)

    def connectionLost(self, reason):
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)

    def _stop(self):
        self.parts = []
        self.finished.errback(Failure(_OverLimit()))
        self.transport.stopProducing()
