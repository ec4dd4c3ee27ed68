"""HTTP statuses as imagepipe sends them: the standard reason phrases."""

from http import HTTPStatus

# RFC 9110's phrases where Python's (and Twisted's, which knows none for 422,
# 429 or 431) predate it.
_PHRASES = {413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
            422: b"Unprocessable Content"}


def reason(status):
    """The standard reason phrase of an HTTP ``status``, as bytes."""
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"
