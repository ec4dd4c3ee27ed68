"""URL dialects: one small pure parser each, from a request path to (source, Transform).

Each module exposes ``parse(path, query, settings) -> Request`` and raises
``BadTransform`` (HTTP 400) or ``NotAllowed`` (HTTP 403) with a message that
says what is wrong.
"""

import re
from dataclasses import dataclass

from imagepipe.errors import NotAllowed  # noqa: F401 - the dialects raise it from here
from imagepipe.imaging.transform import BadTransform
from imagepipe.paths import quoted


@dataclass(frozen=True)
class Request:
    """A parsed on-the-fly request: which source, made into what."""

    source: str  # a clean relative path (imagepipe.paths rules)
    transform: object  # Transform


def bounded_number(text, name, maximum, limit):
    """``text`` as a whole number 1..``maximum``, written without leading zeros.

    ``limit`` names the setting in the message when ``maximum`` is passed;
    huge inputs are never converted.
    """
    if not re.fullmatch(r"[0-9]+", text):
        raise BadTransform(f"{name}: expected a whole number, got {quoted(text)}")
    if text.startswith("0"):
        raise BadTransform(f"{name}: expected a whole number from 1 without leading zeros, "
                           f"got {quoted(text)}")
    if len(text) > len(str(maximum)) or int(text) > maximum:
        shown = text if len(text) <= 12 else text[:9] + "..."
        raise BadTransform(f"{name} {shown} is larger than {limit}")
    return int(text)


__all__ = ("BadTransform", "NotAllowed", "Request", "bounded_number")
