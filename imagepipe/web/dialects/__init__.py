"""URL dialects: one small pure parser each, from a request path to (source, Transform).

Each module exposes ``parse(path, query, settings) -> Request`` and raises
``BadTransform`` (HTTP 400) or ``NotAllowed`` (HTTP 403) with a message that
says what is wrong.
"""

from dataclasses import dataclass

from imagepipe.web.transform import BadTransform


class NotAllowed(ValueError):
    """Well formed but refused by configuration (whitelist, presets only): HTTP 403."""


@dataclass(frozen=True)
class Request:
    """A parsed on-the-fly request: which source, made into what."""

    source: str  # a clean relative path (imagepipe.paths rules)
    transform: object  # Transform


__all__ = ("BadTransform", "NotAllowed", "Request")
