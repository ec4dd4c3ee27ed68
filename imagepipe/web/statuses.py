"""HTTP statuses as imagepipe sends them: the standard reason phrases."""

from http import HTTPStatus

from twisted.web.http import RESPONSES

# Twisted knows no phrase for some statuses imagepipe sends (422, 429, 431),
# and its phrases and Python's for these predate RFC 9110.
_PHRASES = {413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
            422: b"Unprocessable Content"}


def reason(status):
    """The standard reason phrase of an HTTP ``status``, as bytes."""
    if status in _PHRASES:
        return _PHRASES[status]
    if status in RESPONSES:
        return RESPONSES[status]
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"
