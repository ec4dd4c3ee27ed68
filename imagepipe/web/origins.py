"""Source images fetched over HTTP: a master origin, then its fallbacks.

``HttpOrigins.fetch(source)`` GETs ``master + source``.  When the master does
not give the image (404/410, another bad status, no connection, a timeout),
every fallback is asked at once; the first to give it wins and the others
are cancelled.  An image over ``max_bytes`` on the master is final: the
fallbacks hold the same image.  Concurrent fetches of one source share one
transfer.

Every new connection is vetted first, against server-side request forgery:
the host name is resolved once, each address goes through
``refused_address``, and the connection is made to a vetted address itself,
so that a second DNS answer cannot swap it (rebinding).  The Host header and,
for https, the SNI name and the certificate check use the host name of the
URL.  Redirects are followed up to ``max_redirects``, each target vetted the
same way.  A body is counted as it arrives and the connection dropped past
``max_bytes``, whatever ``Content-Length`` said.  ``connect_timeout`` bounds
resolving and connecting, ``read_timeout`` the whole answer after that.
"""

import functools
import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.client import (Agent, HTTPConnectionPool, PotentialDataLoss,
                                RequestTransmissionFailed, ResponseDone, ResponseFailed,
                                ResponseNeverReceived)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory
from zope.interface import implementer

from imagepipe.errors import OriginError, OriginTimeout, SourceMissing, SourceTooLarge
from imagepipe.web.sources import Fetched

MISSING = frozenset({404, 410})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERSISTENT_PER_HOST = 2
ERROR_PAGE_BYTES = 64 * 1024  # read to keep the connection; a longer one drops it

_V4_REFUSED = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_REFUSED = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),  # local-use NAT64, translating to anything
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),  # Teredo (client address hidden), ORCHID, ...
    ("2001:db8::/32", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),
    ("ff00::/8", "multicast"),
)
_REFUSED = tuple((ipaddress.ip_network(net), reason) for net, reason in _V4_REFUSED + _V6_REFUSED)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def refused_address(address, allow=(), host=None):
    """Why an origin at ``address`` may not be fetched from, or None when it may.

    ``address`` is an IP address (text or ``ipaddress`` object) that ``host``
    resolved to.  Unspecified, loopback, private, link-local, shared (CGNAT),
    multicast, broadcast and reserved addresses are refused, and so is an
    IPv6 address carrying one of them (IPv4-mapped or -compatible, 6to4,
    NAT64), unless ``allow`` names ``host`` or holds a network with the
    address or the IPv4 address inside it.  The reason never shows the
    address.
    """
    address = ipaddress.ip_address(address)
    names, networks = _allowance(tuple(allow))
    if host is not None and _host_key(host) in names:
        return None
    inner = _embedded_ipv4(address)
    if any(candidate in network for network in networks for candidate in (address, inner)
           if candidate is not None):
        return None
    return _reason(address)


def _reason(address):
    for network, reason in _REFUSED:
        if address in network:
            return f"{reason} address"
    if address.version == 4:
        return None
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = _reason(inner)
        return reason and f"{reason} inside an IPv6 address"
    if address not in _GLOBAL_UNICAST:
        return "reserved address"
    return None


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), or None."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=32)
def _allowance(allow):
    """``allow`` as (host names, networks); ValueError for an entry that is neither."""
    names, networks = set(), []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except (TypeError, ValueError):
            pass
        name = _host_key(entry) if isinstance(entry, str) else ""
        if not _HOST_NAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
            raise ValueError(f"allow: {entry!r} is neither a host name nor a network "
                             f"like 10.0.0.0/8")
        names.add(name)
    return frozenset(names), tuple(networks)


def _host_key(host):
    return host.lower().rstrip(".")


def _check_base(name, base):
    if not isinstance(base, str) or not base.isascii():
        raise ValueError(f"{name}: expected an http(s) URL in ASCII, got {base!r}")
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{name}: {base!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: expected an http:// or https:// URL with a host, "
                         f"got {base!r}")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{name}: a base URL has no user, query or fragment, got {base!r}")


def _check_number(name, value, kind, low):
    if type(value) not in kind or value < low:
        raise ValueError(f"{name}: expected a number of at least {low}, got {value!r}")


@dataclass(frozen=True)
class OriginSettings:
    """Where sources come from over HTTP, and the limits on fetching them.

    A base URL names a directory: ``https://h/a`` and ``https://h/a/`` are
    the same.  A bad value raises ``ValueError`` naming the field, so the
    configuration layer can report it at startup.
    """

    master: str
    fallbacks: tuple = ()
    allow: tuple = ()  # host names and networks fetched from even when private
    connect_timeout: float = 5.0  # resolving and connecting
    read_timeout: float = 10.0  # the whole answer, once connected
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 3
    user_agent: str = "imagepipe"

    def __post_init__(self):
        _check_base("master", self.master)
        if not isinstance(self.fallbacks, tuple):
            raise ValueError(f"fallbacks: expected a tuple of URLs, got {self.fallbacks!r}")
        for index, base in enumerate(self.fallbacks):
            _check_base(f"fallbacks[{index}]", base)
        if not isinstance(self.allow, tuple) or not all(isinstance(e, str) for e in self.allow):
            raise ValueError(f"allow: expected a tuple of host names and networks, "
                             f"got {self.allow!r}")
        _allowance(self.allow)
        _check_number("connect_timeout", self.connect_timeout, (int, float), 0.001)
        _check_number("read_timeout", self.read_timeout, (int, float), 0.001)
        _check_number("max_bytes", self.max_bytes, (int,), 1)
        _check_number("max_redirects", self.max_redirects, (int,), 0)
        if (not isinstance(self.user_agent, str) or not self.user_agent.isascii()
                or not self.user_agent.isprintable()):
            raise ValueError(f"user_agent: expected printable ASCII, got {self.user_agent!r}")


class HttpOrigins:
    """Fetches sources from the master origin, then from its fallbacks.

    ``resolver(host)`` returns a Deferred firing with the IP addresses (text)
    of a host name; by default ``getaddrinfo`` runs in the reactor's thread
    pool.
    """

    log = Logger()

    def __init__(self, reactor, settings, resolver=None):
        self.reactor = reactor
        self.settings = settings
        self.resolver = resolver or self._getaddrinfo
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = PERSISTENT_PER_HOST
        self.transfers = {}  # source -> the Deferred of its one transfer
        self.waiters = {}  # source -> the callers' Deferreds waiting on it

    def fetch(self, source):
        """GET ``source``, a clean relative path: a Deferred firing with ``Fetched``.

        It fails with ``SourceMissing``, ``OriginError``, ``OriginTimeout`` or
        ``SourceTooLarge``.  Callers asking for a source already on its way wait on
        the same transfer; cancelling abandons it once nobody waits.
        """
        mine = defer.Deferred(lambda waiter: self._abandon(source, waiter))
        if source in self.waiters:
            self.waiters[source].append(mine)
            return mine
        self.waiters[source] = [mine]
        transfer = self._from_any(source)
        self.transfers[source] = transfer
        transfer.addBoth(self._settle, source)
        return mine

    def close(self):
        """Cancel the transfers and close the pooled connections (a Deferred)."""
        for transfer in list(self.transfers.values()):
            transfer.cancel()
        return self.pool.closeCachedConnections()

    def _settle(self, result, source):
        del self.transfers[source]
        for waiter in self.waiters.pop(source):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _abandon(self, source, waiter):
        waiters = self.waiters.get(source, ())
        if waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                self.transfers[source].cancel()

    def _from_any(self, source):
        d = self._from(self.settings.master, source)
        if self.settings.fallbacks:
            d.addErrback(self._from_fallbacks, source)
        return d

    def _from_fallbacks(self, failure, source):
        failure.trap(SourceMissing, OriginError, OriginTimeout)
        attempts = [self._from(base, source) for base in self.settings.fallbacks]
        return _first_success(attempts, failure)

    def _from(self, base, source):
        """GET ``source`` from the origin at ``base``, following its redirects."""
        url = (base if base.endswith("/") else base + "/") + quote(source, safe="/")
        return self._get(url, urlsplit(base).hostname, self.settings.max_redirects)

    def _get(self, url, origin, redirects):
        d = _Exchange(self, url, origin).run()
        d.addCallback(self._answered, url, origin, redirects)
        return d

    def _answered(self, answer, url, origin, redirects):
        response, data = answer
        if response.code == 200:
            return _fetched(response.headers, data)
        if response.code in MISSING:
            raise SourceMissing(f"origin {origin}: not found ({response.code})")
        if response.code not in REDIRECTS:
            raise OriginError(f"origin {origin}: answered {response.code}")
        if redirects == 0:
            raise OriginError(f"origin {origin}: more than max_redirects "
                              f"({self.settings.max_redirects}) redirects")
        target = _redirect_target(url, response.headers.getRawHeaders(b"location"), origin)
        return self._get(target, origin, redirects - 1)

    def _getaddrinfo(self, host):
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), socket.getaddrinfo,
                              host, None, type=socket.SOCK_STREAM)
        d.addCallback(lambda infos: list(dict.fromkeys(info[4][0] for info in infos)))
        return d


def _first_success(attempts, earlier):
    """The first of ``attempts`` to succeed, the others cancelled.

    When none does, the most telling failure, ``earlier`` included: an error
    rather than a miss, so that a broken origin is not reported as "not found".
    """
    failures = [earlier]

    def cancel(race):
        for attempt in attempts:
            attempt.cancel()

    race = defer.Deferred(cancel)

    def won(fetched):
        if not race.called:
            race.callback(fetched)
            for attempt in attempts:
                attempt.cancel()

    def lost(failure):
        failures.append(failure)
        if len(failures) > len(attempts) and not race.called:
            race.errback(_most_telling(failures))

    for attempt in attempts:
        attempt.addCallbacks(won, lost)
    return race


def _most_telling(failures):
    for kinds in ((defer.CancelledError,), (Exception,)):
        for failure in failures:
            if failure.check(*kinds) and not failure.check(SourceMissing):
                return failure
    return Failure(SourceMissing("not found on any origin"))


def _redirect_target(url, locations, origin):
    if not locations:
        raise OriginError(f"origin {origin}: a redirect without a Location")
    location = quote(locations[0].decode("latin-1").strip(), safe=_URL_SAFE)
    try:
        parts = urlsplit(urljoin(url, location))
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise OriginError(f"origin {origin}: a redirect to an invalid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginError(f"origin {origin}: a redirect to something else than http(s)")
    return parts._replace(fragment="").geturl()


def _fetched(headers, data):
    etag = _header(headers, b"etag")
    last_modified = _header(headers, b"last-modified")
    modified = None
    if last_modified is not None:
        try:
            modified = float(http.stringToDatetime(last_modified.encode("latin-1")))
        except (ValueError, IndexError, KeyError):
            pass
    version = etag or last_modified or hashlib.sha256(data).hexdigest()[:32]
    return Fetched(data, version, modified)


def _header(headers, name):
    values = headers.getRawHeaders(name)
    text = values[0].decode("latin-1").strip() if values else ""
    return text or None


def _cancelled(failure):
    """True when ``failure`` is, or wraps, a cancellation."""
    if failure.check(defer.CancelledError):
        return True
    reasons = getattr(failure.value, "reasons", None) or ()
    return any(reason.check(defer.CancelledError) for reason in reasons)


class _OverLimit(Exception):
    """A body went past the bytes it was allowed."""


@implementer(IAgentEndpointFactory)
class _Exchange:
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
