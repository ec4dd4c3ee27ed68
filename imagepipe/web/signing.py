"""Signed URLs: HMAC-SHA256 over the canonical path, with several keys in force.

What is signed is the canonical path of a request: the mount's source kind
(``tree`` or ``origins``), ``Transform.canonical()`` and the source path,
one per line (``imagepipe.imaging.transform``).  Two URLs asking for the same
picture from the same sources, in any dialect, have the same canonical
path and so the same signature; the line breaks (which neither part can
hold) keep a transform from passing for part of a path.  The
signature is the first path segment after the mount prefix, the HMAC in
URL-safe base64 without padding (43 characters):

    /r/<signature>/w:300/h:200/m:fill/photos/cat.jpg

Keys come from a file, one per line in hex (at least 16 bytes); blank lines
and ``#`` comments are skipped.  The first key signs (``imagepipe sign``),
every key verifies, so keys rotate by adding the new one first, then
removing the old one once no URL signed with it is in use.
"""

import base64
import binascii
import hashlib
import hmac

from imagepipe.errors import BadSignature  # noqa: F401 - raised from here

MIN_KEY_BYTES = 16


def canonical_path(kind, request):
    """The text a signature covers for a parsed ``Request`` from sources ``kind``."""
    return f"{kind}\n{request.transform.canonical()}\n{request.source}"


def read_keys(filename):
    """The keys in ``filename``; ``ValueError`` naming the line when one is unusable."""
    keys = []
    with open(filename, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                key = binascii.unhexlify(text)
            except (binascii.Error, ValueError):
                raise ValueError(f"line {number}: expected a key in hex") from None
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"line {number}: key of {len(key)} bytes is shorter than "
                                 f"{MIN_KEY_BYTES}")
            keys.append(key)
    if not keys:
        raise ValueError("no keys")
    return tuple(keys)


class Signer:
    """Signs with the first key, verifies with any."""

    def __init__(self, keys):
        self.keys = tuple(keys)

    def sign(self, text, key=None):
        """The signature segment for ``text`` (a canonical path)."""
        digest = hmac.new(key or self.keys[0], text.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, signature, text):
        """Raise ``BadSignature`` unless ``signature`` signs ``text`` under some key."""
        expected = [self.sign(text, key) for key in self.keys]
        # Compare with every key whatever matches, so timing tells nothing.
        matches = [hmac.compare_digest(signature.encode("ascii", "replace"), e.encode("ascii"))
                   for e in expected]
        if not any(matches):
            raise BadSignature("signature: does not match this URL")
