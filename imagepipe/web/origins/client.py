"""Fetching a source over HTTP: the master origin, then its fallbacks.

``HttpOrigins.fetch(source)`` GETs ``master + source``.  When the master does
not give the image (404/410, another bad status, no connection, a timeout),
every fallback is asked at once; the first to give it wins and the others
are cancelled.  An image over ``max_bytes`` on the master is final: the
fallbacks hold the same image.  Concurrent fetches of one source share one
transfer.  Redirects are followed up to ``max_redirects``, each target
connected to through the same guard as the first (``exchange``).
"""

import hashlib
import socket
from urllib.parse import quote, urljoin, urlsplit

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.client import HTTPConnectionPool

from imagepipe.errors import OriginError, OriginTimeout, SourceMissing
from imagepipe.web.origins.exchange import Exchange
from imagepipe.web.sources import Fetched

MISSING = frozenset({404, 410})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERSISTENT_PER_HOST = 2
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


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
        d = Exchange(self, url, origin).run()
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
