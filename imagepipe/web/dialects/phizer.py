"""phizer's URL grammar: a configured size code, an optional crop, then the name.

    /thumb/photos/cat.jpg                    size code "thumb"
    /thumb/100x0/900x1000/photos/cat.jpg     crop first, then the size code

Size codes come from the configuration, each ``(W, H, constraint)``:

| constraint | Transform |
|---|---|
| `square` | ``mode="fill"``, W x H, centre crop |
| `max` | ``mode="fit"`` inside W x H |
| `portrait` | height H, width from the aspect ratio |
| `landscape` | width W, height from the aspect ratio |

No code enlarges a smaller original.  The crop points ``{tlx}x{tly}`` and
``{brx}x{bry}`` are per-mille (0..1000) of the original, applied before
resizing; 0 is a coordinate like any other (phizer ignored a crop with a 0 in
it).  The two segments after the code are read as a crop when both are
``digits x digits`` and a name follows; otherwise they are the start of the
name.  phizer URLs take no query parameters.
"""

import re
from dataclasses import dataclass, field

from imagepipe.errors import ClientError
from imagepipe.declarations import mount_settings
from imagepipe.paths import PathRules, quoted
from imagepipe.web.dialects import NotAllowed, Request
from imagepipe.imaging.transform import MAX_SIDE, BadTransform, Transform

CONSTRAINTS = ("square", "max", "portrait", "landscape")
PER_MILLE = 1000

_POINT_SHAPE = re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?x[-+]?[0-9]+(?:\.[0-9]*)?$")
_POINT = re.compile(r"^([0-9]{1,7})x([0-9]{1,7})$")


@dataclass(frozen=True)
class PhizerSettings:
    """The size codes (code -> ``(W, H, constraint)``) and the path rules.

    A malformed size code raises ``ValueError`` naming it, so the
    configuration layer can report it at startup.
    """

    sizes: dict = field(default_factory=dict)
    paths: PathRules = PathRules()

    def __post_init__(self):
        for code, size in self.sizes.items():
            if not isinstance(size, tuple) or len(size) != 3:
                raise ValueError(f"size code {code!r}: expected (width, height, constraint)")
            width, height, constraint = size
            for name, value in (("width", width), ("height", height)):
                if type(value) is not int or not 1 <= value <= MAX_SIDE:
                    raise ValueError(f"size code {code!r}: {name} must be a whole number "
                                     f"1..{MAX_SIDE}, got {value!r}")
            if constraint not in CONSTRAINTS:
                raise ValueError(f"size code {code!r}: constraint must be one of "
                                 f"{', '.join(CONSTRAINTS)}, got {constraint!r}")


SECTIONS = {
    "http/phizer": "phizer URLs.",
    "http/phizer/sizes": "Size codes: code = W x H constraint, constraint square, max, "
                         "portrait or landscape, e.g. thumb = 100x100 square.",
}
FREE_SECTIONS = {"http/phizer/sizes": "string"}
SETTINGS = mount_settings(
    "phizer", "/phizer/", False, "Serve phizer URLs: /size-code[/tlx x tly/brx x bry]/name.ext.",
    source="origins",
    source_description="Where sources come from: tree, origins (phizer's master and "
                       "slaves) or s3 (a bucket as the master).")
READS_QUERY = False
_SIZE_CODE = re.compile(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s+(\w+)\s*")


def settings_from(values, rules):
    """``PhizerSettings`` from ``[http/phizer]``; ``ValueError`` names a bad size code."""
    sizes = {}
    for code, text in values["sizes"].items():
        match = _SIZE_CODE.fullmatch(text)
        if not match:
            raise ValueError(f"sizes: {code} = {text!r}: expected W x H constraint, "
                             f"e.g. 100x100 square")
        sizes[code] = (int(match.group(1)), int(match.group(2)), match.group(3))
    return PhizerSettings(sizes=sizes, paths=rules)

def parse(path, query=None, settings=PhizerSettings()):
    """The ``Request`` a phizer URL path (without the mount prefix) asks for."""
    if query:
        raise BadTransform("query: phizer URLs take no query parameters")
    segments = path[1:].split("/") if path.startswith("/") else path.split("/")
    code = segments[0]
    if not code:
        raise BadTransform("size code: missing (expected /{size-code}/{name})")
    size = settings.sizes.get(code)
    if size is None:
        raise NotAllowed(f"unknown size code {quoted(code)}")
    rest = segments[1:]
    crop = None
    if len(rest) >= 2 and _POINT_SHAPE.match(rest[0]) and _POINT_SHAPE.match(rest[1]):
        if len(rest) == 2:
            raise BadTransform("path: no image name after the crop points")
        crop = _crop(rest[0], rest[1])
        rest = rest[2:]
    name = "/".join(rest)
    if not name:
        raise BadTransform("path: no image name after the size code")
    try:
        source = settings.paths.clean(name, "path")
    except ClientError as error:
        raise BadTransform(str(error)) from None
    return Request(source, _transform(size, crop))


def _transform(size, crop):
    width, height, constraint = size
    if constraint == "square":
        return Transform(width=width, height=height, mode="fill", crop=crop)
    if constraint == "max":
        return Transform(width=width, height=height, mode="fit", crop=crop)
    if constraint == "portrait":
        return Transform(height=height, crop=crop)
    return Transform(width=width, crop=crop)


def _crop(top_left, bottom_right):
    left, top = _point(top_left, "top-left")
    right, bottom = _point(bottom_right, "bottom-right")
    if not (left < right and top < bottom):
        raise BadTransform(f"crop: the top-left point {top_left} must be above and left of "
                           f"the bottom-right point {bottom_right}")
    return (left / PER_MILLE, top / PER_MILLE, right / PER_MILLE, bottom / PER_MILLE)


def _point(text, name):
    match = _POINT.match(text)
    if not match or not all(0 <= int(value) <= PER_MILLE for value in match.groups()):
        raise BadTransform(f"crop: {name} point {quoted(text)}: expected XxY with whole "
                           f"per-mille values 0..{PER_MILLE}")
    return int(match.group(1)), int(match.group(2))


