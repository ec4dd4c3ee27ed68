"""URL dialects: one small pure parser each, from a request path to (source, Transform).

``NAMES`` is the one list of dialects.  Each module declares, beside its parser:

- ``SETTINGS``: its config section ``[http/<name>]`` (``mount_settings`` and its
  own keys), ``SECTIONS`` (section descriptions) and ``FREE_SECTIONS``
  (subsections whose keys are the operator's names);
- ``settings_from(values, rules)``: its settings value from the checked section
  (``ValueError`` names a bad key);
- ``READS_QUERY``: whether its URLs carry the request in the query string;
- ``parse(path, query, settings) -> Request``, which raises ``BadTransform``
  (HTTP 400) or ``NotAllowed`` (HTTP 403) with a message that says what is wrong.
"""

import importlib
import re
from dataclasses import dataclass

from imagepipe.errors import NotAllowed  # noqa: F401 - the dialects raise it from here
from imagepipe.imaging.transform import BadTransform
from imagepipe.paths import quoted


NAMES = ("native", "openross", "wanelo", "phizer", "dirpy")  # in config-file order


def named(name):
    """The dialect module called ``name`` (one of ``NAMES``)."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def every():
    """Every dialect module, in ``NAMES`` order."""
    return [named(name) for name in NAMES]


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
