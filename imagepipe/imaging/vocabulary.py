"""The words every grammar of imagepipe shares: resize filters, colours, the longest side.

The XML-RPC arguments (``imagepipe.rpc_arguments``), the URL dialects
(``imagepipe.web.dialects``), the typed ``Transform`` and the config all
take these from here, so a filter or a size one of them accepts the others
accept too.
"""

import re

# No encoder writes a side longer than this (JPEG's and WebP's own limits are
# lower): the largest side a request may ask for, and a source may declare.
MAX_SIDE = 65535

# ImageMagick's resize filter names (the Pillow engine maps each to its nearest).
FILTERS = frozenset((
    "point", "box", "triangle", "hermite", "hanning", "hamming", "blackman", "gaussian",
    "quadratic", "cubic", "catrom", "mitchell", "jinc", "sinc", "sincfast", "kaiser",
    "welsh", "parzen", "bohman", "bartlett", "lagrange", "lanczos", "lanczossharp",
    "lanczos2", "lanczos2sharp", "robidoux", "robidouxsharp", "cosine", "spline",
))

COLOUR_NAMES = frozenset((
    "white", "black", "transparent", "none", "gray", "grey", "silver", "red", "green",
    "blue", "yellow", "orange", "purple", "navy", "teal", "maroon", "olive", "lime",
    "aqua", "fuchsia",
))
_COLOUR = re.compile(
    r"^(#[0-9a-f]{3}|#[0-9a-f]{4}|#[0-9a-f]{6}|#[0-9a-f]{8}"
    r"|rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(,\s*(0|1|0?\.\d+)\s*)?\))$")


def is_colour(text):
    """True for a colour as XML-RPC options and stored transforms write it: a name,
    ``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``, ``rgb(r, g, b)`` or ``rgba(r, g, b, a)``."""
    return text.lower() in COLOUR_NAMES or bool(_COLOUR.match(text.lower()))


def url_colour(text):
    """A colour written in a URL (``RGB`` or ``RRGGBB`` hex, or a name) as we store it.

    Returns ``"#rrggbb"``-style hex or the lower-case name, or None when
    ``text`` is not a colour.
    """
    colour = text.lower()
    if colour in COLOUR_NAMES:
        return colour
    if re.fullmatch(r"[0-9a-f]{3}|[0-9a-f]{6}", colour):
        return f"#{colour}"
    return None
