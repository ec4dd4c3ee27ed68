"""Dirpy's query language, read into one ``Transform``.

    /photos/cat.jpg?resize=300x200,fill&crop=300x200,gravity:ne&save=fmt:webp,qual:80

Commands (each at most once; ``save`` anywhere, the others in this order):

| command | value | Transform |
|---|---|---|
| `crop=border` | | ``trim``; must come before resize and pad |
| `crop=x1,y1,x2,y2` | pixels of the source | ``crop_pixels``; must come before resize and pad |
| `resize` | `WxH`, `Wx`, `xH` or `pct:N`, then `shrink`, `grow`, `unlock`, `fill`, `filter:NAME` | ``fit`` with ``enlarge`` (Dirpy grows by default); `shrink`: no enlarge; `grow`: no shrink; `unlock`: ``force``; `pct:N`: ``scale`` N/100 |
| `crop` | `[WxH][,gravity:c|n|ne|e|se|s|sw|w|nw]` | only right after `resize=WxH,fill` (same box, or none: inherited): ``fill`` with that gravity |
| `pad` | `[WxH][,bg:RGB|bg:RRGGBB|bg:NAME]` | only after a plain or `shrink` resize to the same box (or none: inherited): ``pad`` with ``background`` |
| `transpose` | `rotate90` `rotate180` `rotate270` `flip_h` `flip_v` | ``rotate`` / ``flip``; last (the model rotates after resizing) |
| `save` | `fmt:jpg|png|gif|webp`, `qual:1..100`, `progressive` | ``format``, ``quality``, ``progressive`` |

Refused, each with its reason: anything the one Transform cannot express
(a fill not cropped to its box, a crop by size without that fill, a pixel
box after resizing, padding without a resize, commands out of order or
repeated), unknown commands and options, and ``load`` (no proxying).
"""

import re
from dataclasses import dataclass

from imagepipe.errors import ClientError
from imagepipe.paths import PathRules, quoted
from imagepipe.request import FILTERS, url_colour
from imagepipe.web.dialects import Request
from imagepipe.web.transform import MAX_SIDE, BadTransform, Transform

COMMANDS = ("resize", "crop", "pad", "transpose", "save")
SAVE_FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp"}
# Dirpy's PIL filter names, as the ImageMagick filters we know.
FILTER_ALIASES = {"nearest": "point", "bilinear": "triangle", "bicubic": "catrom",
                  "antialias": "lanczos"}
GRAVITIES = {"c": "center", "n": "north", "ne": "northeast", "e": "east", "se": "southeast",
             "s": "south", "sw": "southwest", "w": "west", "nw": "northwest"}
TRANSPOSES = {"rotate90": (90, ""), "rotate180": (180, ""), "rotate270": (270, ""),
              "flip_h": (0, "h"), "flip_v": (0, "v")}

_SIZE = re.compile(r"^([0-9]*)x([0-9]*)$")
_PIXEL_BOX = re.compile(r"^-?[0-9]+$")
_OPTIONS = {
    "resize": ("WxH", "fill", "unlock", "shrink", "grow", "filter:NAME", "pct:N"),
    "crop": ("WxH", "gravity:G", "border", "x1,y1,x2,y2"),
    "pad": ("WxH", "bg:COLOUR"),
    "save": ("fmt:F", "qual:N", "progressive"),
}


@dataclass(frozen=True)
class DirpySettings:
    """The path rules for the source path."""

    paths: PathRules = PathRules()


def parse(path, query=None, settings=DirpySettings()):
    """The ``Request`` a Dirpy path and query (``(name, value)`` pairs, in order) ask for."""
    try:
        source = settings.paths.clean(path[1:] if path.startswith("/") else path, "path")
    except ClientError as error:
        raise BadTransform(str(error)) from None
    reader = _Reader()
    for name, value in query or ():
        reader.command(name, value)
    return Request(source, reader.transform())


class _Reader:
    """Folds the command sequence into Transform arguments, refusing what does not fit."""

    def __init__(self):
        self.seen = []
        self.kwargs = {}
        self.box = None  # the resize box (width, height), inherited by crop and pad
        self.resize = None  # "fit", "force", "fill" or "scale"
        self.fill_pending = False

    def command(self, name, value):
        if name == "load":
            raise BadTransform("load: loading from a proxy or an upload is not supported; "
                               "the source is the URL path")
        if name not in COMMANDS:
            raise BadTransform(f"unknown command {quoted(name)} (known: {', '.join(COMMANDS)})")
        if name in self.seen:
            raise BadTransform(f"{name}: given twice (each command may appear once)")
        if self.fill_pending and name not in ("crop", "save"):
            raise BadTransform(f"{name}: resize with fill must be followed by crop to its box "
                               f"(a fill larger than the box cannot be expressed)")
        if "transpose" in self.seen and name != "save":
            raise BadTransform(f"{name} after transpose cannot be expressed: transpose must "
                               f"come after resize, crop and pad")
        self.seen.append(name)
        getattr(self, f"_{name}")(_options(name, value))

    def transform(self):
        if self.fill_pending:
            raise BadTransform("resize: fill must be followed by crop to its box (a fill "
                               "larger than the box cannot be expressed)")
        return Transform(**self.kwargs)

    def _resize(self, options):
        if "pad" in self.seen:
            raise BadTransform("resize after pad cannot be expressed: pad must come last")
        if "pct" in options:
            percent = _whole(options.pop("pct"), "resize", "pct", 1, 1000)
            extra = sorted(set(options) - {"filter"})
            if extra:
                raise BadTransform(f"resize: pct excludes {', '.join(extra)}")
            self._filter(options)
            self.resize = "scale"
            self.kwargs["scale"] = percent / 100
            return
        size = options.pop("size", None)
        if size is None:
            raise BadTransform("resize: needs a size WxH, Wx or xH")
        width, height = size
        modes = [flag for flag in ("fill", "unlock") if options.pop(flag, False)]
        if len(modes) == 2:
            raise BadTransform("resize: fill and unlock exclude each other")
        if modes and (width is None or height is None):
            raise BadTransform(f"resize: {modes[0]} needs both width and height")
        shrink = options.pop("shrink", False)
        grow = options.pop("grow", False)
        if shrink and grow:
            raise BadTransform("resize: shrink and grow exclude each other")
        self._filter(options)
        if grow:
            self.kwargs["shrink"] = False
        self.box = size
        self.resize = {"fill": "fill", "unlock": "force"}.get(modes[0] if modes else "", "fit")
        self.fill_pending = self.resize == "fill"
        self.kwargs.update(width=width, height=height, enlarge=not shrink,
                           mode="force" if self.resize == "force" else "fit")

    def _filter(self, options):
        if "filter" in options:
            filter_name = options.pop("filter").lower()
            filter_name = FILTER_ALIASES.get(filter_name, filter_name)
            if filter_name not in FILTERS:
                raise BadTransform(f"resize: unknown filter {quoted(filter_name)} (e.g. lanczos, "
                                   f"mitchell, catrom, triangle, point)")
            self.kwargs["filter"] = filter_name

    def _crop(self, options):
        if "box" in options:
            if "resize" in self.seen or "pad" in self.seen:
                raise BadTransform("crop=x1,y1,x2,y2 must come before resize and pad (the "
                                   "box is in pixels of the source)")
            if any(token.startswith("-") for token in options["box"]):
                raise BadTransform(f"crop: box coordinates must not be negative, got "
                                   f"{quoted(','.join(options['box']))}")
            box = tuple(_whole(token, "crop", "box coordinate", 0, 1 << 20)
                        for token in options["box"])
            if not (box[0] < box[2] and box[1] < box[3]):
                raise BadTransform("crop: the box is empty (x1 < x2 and y1 < y2)")
            self.kwargs["crop_pixels"] = box
            return
        if options.pop("border", False):
            if options:
                raise BadTransform("crop: border excludes a size and gravity")
            if "resize" in self.seen or "pad" in self.seen:
                raise BadTransform("crop=border must come before resize and pad "
                                   "(trimming happens first)")
            self.kwargs["trim"] = True
            return
        if not self.fill_pending:
            raise BadTransform("crop: a crop by size needs the source size; it is only "
                               "supported right after resize=WxH,fill with the same size")
        size = options.pop("size", self.box)
        if size != self.box:
            raise BadTransform(f"crop: size {_size_text(size)} must match the resize box "
                               f"{_size_text(self.box)}")
        self.kwargs.update(mode="fill", gravity=options.pop("gravity", "center"))
        self.fill_pending = False

    def _pad(self, options):
        if self.resize is None:
            raise BadTransform("pad: needs a resize to the same box before it (padding "
                               "without resizing is not supported)")
        if self.resize != "fit":
            named = {"fill": "fill", "force": "unlock", "scale": "pct"}[self.resize]
            raise BadTransform(f"pad: cannot follow a resize with {named}")
        size = options.pop("size", self.box)
        if size != self.box:
            raise BadTransform(f"pad: size {_size_text(size)} must match the resize box "
                               f"{_size_text(self.box)}")
        if None in size:
            raise BadTransform("pad: needs both width and height")
        self.kwargs["mode"] = "pad"
        if "bg" in options:
            self.kwargs["background"] = options.pop("bg")

    def _transpose(self, options):
        self.kwargs["rotate"], self.kwargs["flip"] = options["transpose"]

    def _save(self, options):
        if "fmt" in options:
            self.kwargs["format"] = options.pop("fmt")
        if "qual" in options:
            self.kwargs["quality"] = options.pop("qual")
        if options.pop("progressive", False):
            self.kwargs["progressive"] = True


def _options(command, value):
    """The options of one command as a dict of checked values."""
    if command == "transpose":
        if value not in TRANSPOSES:
            raise BadTransform(f"transpose: expected one of {', '.join(TRANSPOSES)}, "
                               f"got {quoted(value)}")
        return {"transpose": TRANSPOSES[value]}
    tokens = value.split(",") if value else []
    if command == "crop" and len(tokens) == 4 and all(_PIXEL_BOX.match(t) for t in tokens):
        return {"box": tokens}
    options = {}
    for token in tokens:
        name, colon, text = token.partition(":")
        if not colon and "x" in name and name not in _CONVERT[command]:
            name, text = "size", _size(token, command)
        elif name not in _CONVERT.get(command, {}):
            raise BadTransform(f"{command}: unknown option {quoted(token)} "
                               f"(known: {', '.join(_OPTIONS[command])})")
        else:
            takes_value, convert = _CONVERT[command][name]
            if takes_value != bool(colon):
                raise BadTransform(f"{command}: option {name!r} " +
                                   ("needs a value" if takes_value else "takes no value"))
            text = convert(text, command, name) if takes_value else True
        if name in options:
            raise BadTransform(f"{command}: option {name!r} given twice")
        options[name] = text
    return options


def _size(text, command):
    match = _SIZE.match(text)
    if not match or not any(match.groups()):
        raise BadTransform(f"{command}: expected a size WxH, Wx or xH, got {quoted(text)}")
    width, height = (_whole(side, command, name, 1, MAX_SIDE) if side else None
                     for side, name in zip(match.groups(), ("width", "height")))
    return width, height


def _whole(text, command, name, low, high):
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise BadTransform(f"{command}: {name} must be a whole number {low}..{high}, "
                           f"got {quoted(text)}")
    return int(text)


def _text(text, command, name):
    return text


def _gravity(text, command, name):
    if text not in GRAVITIES:
        raise BadTransform(f"{command}: gravity must be one of {', '.join(GRAVITIES)}, "
                           f"got {quoted(text)}")
    return GRAVITIES[text]


def _colour(text, command, name):
    colour = url_colour(text)
    if colour is not None:
        return colour
    raise BadTransform(f"{command}: bg must be RGB or RRGGBB hex or a colour name, "
                       f"got {quoted(text)}")


def _format(text, command, name):
    if text.lower() not in SAVE_FORMATS:
        raise BadTransform(f"{command}: fmt must be one of jpg, png, gif, webp, "
                           f"got {quoted(text)}")
    return SAVE_FORMATS[text.lower()]


def _quality(text, command, name):
    return _whole(text, command, name, 1, 100)


_CONVERT = {
    "resize": {"fill": (False, None), "unlock": (False, None), "shrink": (False, None),
               "grow": (False, None), "filter": (True, _text), "pct": (True, _text)},
    "crop": {"border": (False, None), "gravity": (True, _gravity)},
    "pad": {"bg": (True, _colour)},
    "save": {"fmt": (True, _format), "qual": (True, _quality), "progressive": (False, None)},
}


def _size_text(size):
    width, height = size
    return f"{width or ''}x{height or ''}"


