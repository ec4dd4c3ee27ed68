"""HTTP connections that a slow or greedy client cannot hold forever.

``Channel`` is Twisted's ``HTTPChannel`` with deadlines and answers where
Twisted has none (the numbers are ``config.ClientLimits``):

- the request line and headers must be complete within ``head_timeout``
  seconds of the connection opening (or of the previous answer), however
  the bytes trickle in: Twisted's idle timeout restarts on every byte, so a
  client sending one byte a second holds a connection forever;
- a body must keep coming: it may take ``body_timeout`` seconds plus one
  second for every ``body_min_rate`` bytes received (Apache's
  ``mod_reqtimeout`` rule), so a stalled upload is dropped, a slow but
  moving one is not;
- a request line or header line too long to read is answered 414 or 431
  instead of a silent close.

Each is answered (408, 414, 431) and the connection closed the way nginx
closes it after an error: the answer and then our half of the connection go
out, and what the client still sends is read and thrown away for at most
``LINGER`` seconds, so that a client busy sending its body still reads the
answer instead of a reset.  The connection counts themselves (all clients,
and per client address) are kept by the site.
"""

from twisted.internet import protocol
from twisted.web import http

from imagepipe.web.statuses import reason, text

LINGER = 5.0  # seconds a refused client's further bytes are read and discarded


def canned(status, message, close=True, retry_after=None):
    """A complete plain-text HTTP/1.1 answer, as bytes, for a connection about to close."""
    body = text(status, message)
    head = [f"HTTP/1.1 {status} {reason(status).decode()}",
            "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}"]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def linger_close(transport, call_later):
    """Close ``transport`` after what was written, discarding input for at most ``LINGER`` s."""
    try:
        transport.loseWriteConnection()
    except (AttributeError, NotImplementedError):
        transport.loseConnection()
    return call_later(LINGER, transport.abortConnection)


class Refusal(protocol.Protocol):
    """Answers a connection the node will not take with one canned answer, then closes."""

    _linger = None

    def __init__(self, answer, call_later):
        self.answer = answer
        self.call_later = call_later

    def connectionMade(self):
        self.transport.write(self.answer)
        self._linger = linger_close(self.transport, self.call_later)

    def dataReceived(self, data):
        pass  # the request is not read

    def connectionLost(self, reason):
        if self._linger is not None and self._linger.active():
            self._linger.cancel()


class Channel(http.HTTPChannel):
    """``HTTPChannel`` with a request-head deadline, a body rate, and 414/431 answers."""

    client = None  # the client address its site counts it under (None: exempt)
    _deadline = None  # IDelayedCall of the head or body deadline
    _body_started = None  # when the body of the request being read began

    @property
    def limits(self):
        """The site's ``config.ClientLimits`` (replaced on reload)."""
        return self.site.client_limits

    def connectionMade(self):
        super().connectionMade()
        self._await_head()

    def _await_head(self):
        self._cancel_deadline()
        self._deadline = self.callLater(self.limits.head_timeout, self._answer_and_close, 408,
                                        f"request head not complete within head_timeout "
                                        f"({self.limits.head_timeout:g} s)")

    def allHeadersReceived(self):
        self._cancel_deadline()
        super().allHeadersReceived()
        request = self.requests[-1] if self.requests else None
        if self.length != 0 and not getattr(request, "refused", False):
            self._body_started = self._clock()
            self._watch_body()

    def allContentReceived(self):
        self._cancel_deadline()
        super().allContentReceived()

    def _watch_body(self):
        limits = self.limits
        received = getattr(self.requests[-1], "received", 0) if self.requests else 0
        allowed = limits.body_timeout + received / limits.body_min_rate
        elapsed = self._clock() - self._body_started
        if elapsed >= allowed:
            self._answer_and_close(408, f"request body arriving slower than body_min_rate "
                                        f"({limits.body_min_rate} bytes/s after body_timeout "
                                        f"{limits.body_timeout:g} s)")
            return
        self._deadline = self.callLater(allowed - elapsed, self._watch_body)

    def _clock(self):
        return self.site.reactor.seconds()

    def requestDone(self, request):
        super().requestDone(request)
        if self.persistent and self.transport is not None and self.transport.connected:
            self._await_head()

    def lineLengthExceeded(self, line):
        # Nothing of this request read yet: the request line itself is too long.
        if self._receivedHeaderSize == 0 and not self._handlingRequest:
            self._answer_and_close(414, f"request line longer than {self.MAX_LENGTH} bytes")
        else:
            self._answer_and_close(431, f"header line longer than {self.MAX_LENGTH} bytes")

    def _answer_and_close(self, status, message):
        self.refuse(canned(status, message))

    def refuse(self, answer):
        """Send ``answer`` (complete, with ``Connection: close``) and close the connection.

        Whatever the client still sends is not read: a body declared too
        large is never received.
        """
        self._cancel_deadline()
        self.setTimeout(None)
        self.transport.write(answer)
        self.dataReceived = lambda data: None
        if self._abortingCall is None:
            self._abortingCall = linger_close(self.transport, self.callLater)

    def _cancel_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason):
        self._cancel_deadline()
        super().connectionLost(reason)
        self.site.connection_closed(self)
