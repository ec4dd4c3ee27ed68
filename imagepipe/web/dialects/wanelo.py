"""The wanelo image-server dialect: ``ns/aaa/bbb/ccc/<23 hex>/output``.

wanelo stored a source under its namespace and the partitioned MD5 of its
bytes, ``ns/h[0:3]/h[3:6]/h[6:9]/h[9:32]/original``, and served outputs
named after what they are:

=====================  ==============================================
``WxH[-qN].ext``       fill and centre crop to exactly W×H
``xN[-qN].ext``        the same, square: N×N
``wN[-qN].ext``        width N, height by the aspect ratio, shrink only
``full_size[-qN].ext`` the source size
=====================  ==============================================

``ext`` (jpg, png, gif, webp) is the output format; the quality defaults to
75.  The query is ignored.  Sizes beyond ``max_width``/``max_height`` are
refused with 400 naming the limit (wanelo's README promised 406 and never
enforced it).
"""

import re
from dataclasses import dataclass

from imagepipe.paths import quoted
from imagepipe.declarations import Setting, mount_settings
from imagepipe.web.dialects import NotAllowed, Request, bounded_number
from imagepipe.imaging.transform import MAX_SIDE, BadTransform, Transform

FORMATS = ("jpg", "png", "gif", "webp")
DEFAULT_QUALITY = 75
SOURCE_NAME = "original"
_NAMESPACE = re.compile(r"[a-z0-9_-]{1,64}")
_HASH_LENGTHS = (3, 3, 3, 23)


@dataclass(frozen=True)
class WaneloSettings:
    """What one wanelo mount serves.

    ``namespaces``: None serves any well-formed namespace; otherwise a
    frozenset of the names served.  ``max_width``/``max_height``: the
    largest output sides asked for.
    """

    namespaces: frozenset | None = None
    max_width: int = 2000
    max_height: int = 2000

    def __post_init__(self):
        for name in ("max_width", "max_height"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= MAX_SIDE:
                raise ValueError(f"{name}: expected a whole number 1..{MAX_SIDE}, got {value!r}")
        if self.namespaces is not None and not (
                isinstance(self.namespaces, frozenset)
                and all(isinstance(name, str) and _NAMESPACE.fullmatch(name)
                        for name in self.namespaces)):
            raise ValueError(f"namespaces: expected None or a frozenset of names "
                             f"[a-z0-9_-]{{1,64}}, got {self.namespaces!r}")


SECTIONS = {"http/wanelo": "wanelo image-server URLs; sources at "
                           "ns/aaa/bbb/ccc/<hash>/original."}
FREE_SECTIONS = {}
SETTINGS = mount_settings(
    "wanelo", "/wanelo/", False,
    "Serve wanelo image-server URLs: /ns/aaa/bbb/ccc/<23 hex>/WxH-qN.ext.") + (
    Setting("http/wanelo", "namespaces", "string_list", "",
            "Namespaces served; empty serves any."),
    Setting("http/wanelo", "max_width", f"integer(1, {MAX_SIDE})", "2000",
            "Widest output served."),
    Setting("http/wanelo", "max_height", f"integer(1, {MAX_SIDE})", "2000",
            "Tallest output served."),
)
READS_QUERY = False


def settings_from(values, rules):
    """``WaneloSettings`` from ``[http/wanelo]``."""
    return WaneloSettings(
        namespaces=frozenset(values["namespaces"]) if values["namespaces"] else None,
        max_width=values["max_width"], max_height=values["max_height"])

def parse(path, query=None, settings=WaneloSettings()):
    """``ns/aaa/bbb/ccc/<23 hex>/output`` as a ``Request`` for ``…/original``.

    Raises ``BadTransform`` for a malformed path or a size beyond the
    limits, and ``NotAllowed`` for a namespace that is not served.
    """
    parts = path.split("/")
    if len(parts) != 6:
        raise BadTransform(f"expected namespace/aaa/bbb/ccc/<23 hex digits>/output "
                           f"(6 components), got {len(parts)}: {quoted(path)}")
    namespace, *hashed, output = parts
    if not _NAMESPACE.fullmatch(namespace):
        raise BadTransform(f"namespace: expected 1 to 64 of a-z, 0-9, _ and -, "
                           f"got {quoted(namespace)}")
    for index, (part, length) in enumerate(zip(hashed, _HASH_LENGTHS), start=1):
        _check_hex(part, length, index)
    transform = _output(output, settings)
    if settings.namespaces is not None and namespace not in settings.namespaces:
        raise NotAllowed(f"namespace {namespace} is not served here")
    return Request(source="/".join([namespace, *hashed, SOURCE_NAME]), transform=transform)


def _check_hex(part, length, index):
    if re.fullmatch(rf"[0-9a-f]{{{length}}}", part):
        return
    if re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", part):
        raise BadTransform(f"hash part {index}: expected lowercase hex digits, got {quoted(part)}")
    raise BadTransform(f"hash part {index}: expected {length} hex digits, got {quoted(part)}")


def _output(output, settings):
    """The ``Transform`` an output name asks for."""
    stem, dot, extension = output.rpartition(".")
    if not dot or extension not in FORMATS:
        raise BadTransform(f"output: expected an extension of {', '.join(FORMATS)}, "
                           f"got {quoted(output)}")
    size, dash, quality_text = stem.partition("-")
    quality = DEFAULT_QUALITY
    if dash:
        if not quality_text.startswith("q"):
            raise BadTransform(f"output: expected -qN after the size, got {quoted(output)}")
        quality = bounded_number(quality_text[1:], "quality", 100, "the maximum quality 100")
    width_limit = f"max_width {settings.max_width}"
    height_limit = f"max_height {settings.max_height}"
    common = dict(format=extension, quality=quality)
    if size == "full_size":
        return Transform(**common)
    if size.startswith("w"):
        width = bounded_number(size[1:], "width", settings.max_width, width_limit)
        return Transform(width=width, mode="fit", enlarge=False, **common)
    if size.startswith("x"):
        side = bounded_number(size[1:], "size", min(settings.max_width, settings.max_height),
                       width_limit if settings.max_width <= settings.max_height
                       else height_limit)
        return Transform(width=side, height=side, mode="fill", enlarge=True, **common)
    width_text, cross, height_text = size.partition("x")
    if not cross:
        raise BadTransform(f"output: expected WxH, xN, wN or full_size before the "
                           f"extension, got {quoted(output)}")
    width = bounded_number(width_text, "width", settings.max_width, width_limit)
    height = bounded_number(height_text, "height", settings.max_height, height_limit)
    return Transform(width=width, height=height, mode="fill", enlarge=True, **common)


