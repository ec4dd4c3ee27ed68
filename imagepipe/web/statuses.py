"""HTTP errors as imagepipe answers them, for every resource: which domain error gets
which status, the standard reason phrases, and the plain-text body.

``STATUSES`` is the one mapping from what went wrong to a status (XML-RPC
has its own, ``imagepipe.rpc.FAULTS``).  Every error answer is
``<status> <reason>: <message>`` in ``text/plain``, never cached, with
``Retry-After`` on 429 and 503; an unexpected error is logged with its
traceback and answered 500 without it.
"""

from http import HTTPStatus

from twisted.internet import defer
from twisted.web import resource, server

from imagepipe.errors import (BadSignature, BadTransform, Busy, ClientError, NotAllowed,
                              OperationFailed, OriginError, OriginTimeout, SourceMissing,
                              SourceTooLarge, TooLarge)

# Checked in order: the first class that matches wins.
STATUSES = (
    (BadTransform, 400),  # malformed request: the message says what
    (NotAllowed, 403),  # not on the whitelist, presets or namespaces
    (BadSignature, 403),
    (SourceMissing, 404),
    (SourceTooLarge, 413),  # a source from an origin over max_bytes
    (TooLarge, 422),  # over a pixel, frame, time or size limit: named in the message
    (ClientError, 422),  # the source is not an image imagepipe can read
    (Busy, 429),  # a queue is full, or the client has its share (503 while shutting down)
    (OriginError, 502),
    (OriginTimeout, 504),
    (OperationFailed, 500),  # the node cannot read its own tree
)

# RFC 9110's phrases where Python's (and Twisted's, which knows none for 422,
# 429 or 431) predate it.
_PHRASES = {413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
            422: b"Unprocessable Content"}


def status_of(error, closing=False):
    """The HTTP status for ``error``; 500 for anything unexpected.

    ``closing``: the node is shutting down, so a full queue or a cancelled
    fetch is 503 (go elsewhere), not 429.
    """
    if closing and isinstance(error, (Busy, defer.CancelledError)):
        return 503
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 500


def reason(status):
    """The standard reason phrase of an HTTP ``status``, as bytes."""
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"


def text(status, message):
    """The body of an error answer: ``<status> <reason>: <message>``, one line."""
    return f"{status} {reason(status).decode()}: {message}\n".encode()


def error_page(request, status, message, retry_after=1):
    """Set ``request`` up as the error answer and return its body (empty for HEAD)."""
    body = text(status, message)
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    if status in (429, 503):
        request.setHeader(b"retry-after", str(retry_after).encode())
    request.setHeader(b"content-length", str(len(body)).encode())
    return body if request.method != b"HEAD" else b""


def refused(request, authenticator):
    """None when ``request`` carries credentials ``authenticator`` accepts.

    Otherwise the request is set up as the 401 (with the challenge) and its
    body is returned: the one answer to missing or wrong credentials, for
    XML-RPC, ``/metrics`` and the operator page alike.
    """
    if authenticator.allows(request.getHeader(b"authorization")):
        return None
    request.setHeader(b"www-authenticate", authenticator.challenge)
    return error_page(request, 401, "missing or wrong credentials")


def failed(request, error, log, failure=None, closing=False, reporter=None):
    """Answer a request whose work failed with ``error``, and finish it; the status.

    An unexpected error (500) is logged with ``failure``'s traceback and
    answered without it (and sent to ``reporter``, Sentry, when given).  A
    request already finished or gone is left alone.
    """
    status = status_of(error, closing)
    message = str(error)
    if status == 500:
        log.failure("answering {uri}", failure, uri=request.uri)
        message = "internal error (logged)"
        if reporter is not None and failure is not None:
            reporter.report(failure, url=request.uri.decode("latin-1")[:300],
                            method=request.method.decode("latin-1"))
    if request.finished or getattr(request, "_disconnected", False):  # answered, or gone
        return status
    request.write(error_page(request, status, message))
    request.finish()
    return status


def answer_when_done(request, d, content_type, log, reporter=None):
    """Answer ``request`` with the bytes ``d`` fires with (not to be cached), or with the
    error it fails with; for a resource's render method to return."""
    def send(body):
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-store")
        request.write(body)
        request.finish()

    d.addCallback(send)
    d.addErrback(lambda failure: failed(request, failure.value, log, failure,
                                        reporter=reporter))
    return server.NOT_DONE_YET


class ErrorResource(resource.Resource):
    """A leaf answering every request with one error."""

    isLeaf = True

    def __init__(self, status, message):
        super().__init__()
        self.status, self.message = status, message

    def render(self, request):
        return error_page(request, self.status, self.message)
