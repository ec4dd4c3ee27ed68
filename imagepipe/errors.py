"""Domain exceptions.

Inner code raises these; each protocol turns them into its own answers in one
table (``imagepipe.rpc.FAULTS`` for XML-RPC, ``imagepipe.web.statuses.STATUSES``
for HTTP).  Every domain error derives from ``ImagepipeError``, so one that a
render process raises comes back to the node as itself.  Messages are written for the
client: they name the argument and the problem, never a server path.
"""


class ImagepipeError(Exception):
    """Base of the errors that are reported to clients as they are."""


class ClientError(ImagepipeError):
    """The request is wrong: a bad argument, path, payload or image."""


class OperationFailed(ImagepipeError):
    """A well-formed request could not be carried out (e.g. a missing source)."""


class Undone(OperationFailed):
    """The call failed and the storage is as it was before it (a bucket deleted what the
    call had written): a journal takes its record of the change back."""


class Busy(ImagepipeError):
    """Too many calls are pending; the client should retry later."""


class TooLarge(ImagepipeError):
    """A configured limit was hit; the message names the limit."""


class SourceTooLarge(TooLarge):
    """A source fetched from an origin is larger than allowed (HTTP 413)."""


class SourceMissing(ImagepipeError):
    """The source of an on-the-fly request does not exist (HTTP 404)."""


class OriginError(ImagepipeError):
    """An origin server failed or answered wrongly (HTTP 502)."""


class OriginTimeout(ImagepipeError):
    """An origin server did not answer in time (HTTP 504)."""


class BadTransform(ClientError, ValueError):
    """An on-the-fly request that cannot be honoured as written (HTTP 400)."""


class NotAllowed(ImagepipeError, ValueError):
    """Well formed but refused by configuration (whitelist, presets only): HTTP 403."""


class BadSignature(ImagepipeError, ValueError):
    """The URL's signature is missing or does not match any key (HTTP 403)."""


class InvalidMessage(ImagepipeError):
    """A replication message breaks the wire format; the text says which field and how."""


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""
