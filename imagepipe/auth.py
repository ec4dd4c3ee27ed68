"""Optional authentication of XML-RPC calls: HTTP Basic or bearer tokens.

Credentials come from a file (``user:password`` lines for basic, one token
per line for token; blank lines and ``#`` comments ignored).  Every
comparison is constant-time and runs over every entry, so timing tells
nothing about which part was wrong.
"""

import base64
import binascii
import hmac


def read_credentials(scheme, path):
    """The entries of the credentials file ``path`` for ``scheme``; ``ValueError`` says why not."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read ({error.__class__.__name__})") from None
    entries = [line for line in lines if line and not line.startswith("#")]
    if scheme == "basic" and any(":" not in line for line in entries):
        raise ValueError("expected 'user:password' lines for auth = basic")
    if not entries:
        raise ValueError("no credentials")
    return tuple(entry.encode("utf-8") for entry in entries)


class Authenticator:
    """Decides whether a request's ``Authorization`` header is acceptable."""

    def __init__(self, scheme, entries=()):
        self.scheme = scheme  # "none", "basic" or "token"
        self.entries = tuple(entries)

    @classmethod
    def of(cls, network):
        """The authenticator ``[network]`` (a loaded ``NetworkSettings``) asks for."""
        return cls(network.auth, network.credentials)

    @property
    def challenge(self):
        """The ``WWW-Authenticate`` value sent with a 401."""
        return b'Basic realm="imagepipe"' if self.scheme == "basic" else b'Bearer realm="imagepipe"'

    def allows(self, header):
        """True when the raw ``Authorization`` header value (bytes or None) is accepted."""
        if self.scheme == "none":
            return True
        if not header:
            return False
        kind, _, value = header.strip().partition(b" ")
        if self.scheme == "basic":
            if kind.lower() != b"basic":
                return False
            try:
                offered = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
        else:
            if kind.lower() != b"bearer":
                return False
            offered = value.strip()
        matched = False
        for entry in self.entries:
            matched |= hmac.compare_digest(offered, entry)
        return matched
