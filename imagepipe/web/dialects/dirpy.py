"""Dirpy's query language: its commands, in the order written, as the steps of a ``Transform``.

    /photos/cat.jpg?resize=300x200,fill&crop=300x200,gravity:ne&save=fmt:webp,qual:80
    /photos/cat.jpg?transpose=rotate90&resize=300x100&pad=300x300,bg:00f

Each command is one step, applied to the picture the one before made, as
Dirpy runs them; ``save`` may stand anywhere and sets the encoding.  A size
a command leaves out is inherited from the last command that gave one.

| command | value | step |
|---|---|---|
| `resize` | `WxH`, `Wx` or `xH`, then `shrink`, `grow`, `unlock`, `fill`, `filter:NAME`; or `pct:N` | ``fit`` with ``enlarge`` (Dirpy grows by default); `shrink`: no enlarging; `grow`: no shrinking; `unlock`: ``force``; `fill`: ``cover`` (the box covered, not cropped); `pct:N`: ``scale`` N/100 |
| `crop` | `border` | ``trim`` |
| `crop` | `x1,y1,x2,y2` | ``crop_pixels``, in pixels of the picture so far |
| `crop` | `[WxH][,gravity:c|n|ne|e|se|s|sw|w|nw]` | ``fill`` without resizing: cut to the box (at most the picture) by gravity |
| `pad` | `[WxH][,bg:RGB|bg:RRGGBB|bg:NAME][,gravity:G]` | ``pad`` to the box on ``background`` (white), placed by gravity; a picture larger than the box is first fitted into it (Dirpy refused it) |
| `transpose` | `flipvert`, `fliphorz`, `rotate90`, `rotate180`, `rotate270` (and `flip_h`, `flip_v`) | ``flip`` ``h`` (left to right) or ``v`` (top to bottom); ``rotate`` counter-clockwise, as Dirpy's code turns (PIL's ``ROTATE_90``; its documentation says clockwise) |
| `save` | `fmt:jpg|png|gif|webp`, `qual:1..100`, `progressive` | ``format``, ``quality``, ``progressive`` |

Adjacent steps that one ``Transform`` does in the same order are folded
into it (``compose``): ``resize=...,fill&crop=`` is one ``fill``,
``resize=WxH&pad=WxH`` one ``pad``, ``crop=border&resize=...`` one trim
and fit, ``transpose=...&resize=...`` one rotate and fit.  At most
``MAX_STEPS`` steps remain.  Refused, each with its reason: unknown
commands and options, ``save`` given twice, and ``load`` (no proxying).
"""

import dataclasses
import re
from dataclasses import dataclass

from imagepipe.errors import ClientError
from imagepipe.declarations import mount_settings
from imagepipe.paths import PathRules, quoted
from imagepipe.imaging.vocabulary import FILTERS, url_colour
from imagepipe.web.dialects import Request
from imagepipe.imaging.transform import MAX_SIDE, MAX_STEPS, BadTransform, Transform

COMMANDS = ("resize", "crop", "pad", "transpose", "save")
SAVE_FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp"}
# Dirpy's PIL filter names, as the ImageMagick filters we know.
FILTER_ALIASES = {"nearest": "point", "bilinear": "triangle", "bicubic": "catrom",
                  "antialias": "lanczos"}
GRAVITIES = {"c": "center", "n": "north", "ne": "northeast", "e": "east", "se": "southeast",
             "s": "south", "sw": "southwest", "w": "west", "nw": "northwest"}
# PIL's transpose methods, as Dirpy names them: ROTATE_90 turns counter-clockwise.
TRANSPOSES = {"flipvert": (0, "h"), "fliphorz": (0, "v"), "rotate90": (270, ""),
              "rotate180": (180, ""), "rotate270": (90, ""),
              "flip_h": (0, "h"), "flip_v": (0, "v")}

_SIZE = re.compile(r"^([0-9]*)x([0-9]*)$")
_PIXEL_BOX = re.compile(r"^-?[0-9]+$")
_OPTIONS = {
    "resize": ("WxH", "fill", "unlock", "shrink", "grow", "filter:NAME", "pct:N"),
    "crop": ("WxH", "gravity:G", "border", "x1,y1,x2,y2"),
    "pad": ("WxH", "bg:COLOUR", "gravity:G"),
    "save": ("fmt:F", "qual:N", "progressive"),
}
_ENCODING = ("format", "quality", "progressive")


@dataclass(frozen=True)
class DirpySettings:
    """The path rules for the source path."""

    paths: PathRules = PathRules()


SECTIONS = {"http/dirpy": "Dirpy URLs."}
FREE_SECTIONS = {}
SETTINGS = mount_settings(
    "dirpy", "/dirpy/", False,
    "Serve Dirpy URLs: /path?resize=...&crop=...&pad=...&transpose=...&save=...")
READS_QUERY = True  # the commands are in the query string, so results are cached by it


def settings_from(values, rules):
    """``DirpySettings`` from ``[http/dirpy]``."""
    return DirpySettings(paths=rules)

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


def compose(steps):
    """``steps`` (``Transform`` values, in order) with neighbours one ``Transform`` can do
    folded together; the same pictures, in as few steps as the model allows."""
    composed = []
    for step in steps:
        folded = _folded(composed[-1], step) if composed else None
        if folded is None:
            composed.append(step)
        else:
            composed[-1] = folded
    return composed


# The stage of a transform each field belongs to, in the order one Transform
# does them (imagepipe.imaging.geometry): cut, trim, rotate, flip, resize
# (with its crop or canvas).
_STAGES = {"crop": 1, "crop_pixels": 1, "trim": 2, "rotate": 3, "flip": 4}
_RESIZE = 5


def _stages(step):
    return {_STAGES.get(item.name, _RESIZE) for item in dataclasses.fields(step)
            if item.name not in _ENCODING + ("then",)
            and getattr(step, item.name) != item.default}


def _folded(first, second):
    """One ``Transform`` doing ``first`` then ``second``, or None when none can."""
    box = (first.width, first.height)
    if _cuts_only(second, "fill") and first.mode == "cover" and box == _box(second):
        return dataclasses.replace(first, mode="fill", gravity=second.gravity)
    if _cuts_only(second, "pad") and first.mode == "fit" and first.shrink \
            and first.scale is None and box == _box(second):
        return dataclasses.replace(first, mode="pad", gravity=second.gravity,
                                   background=second.background)
    earlier, later = _stages(first), _stages(second)
    if not earlier or not later or max(earlier) < min(later):
        changed = {item.name: getattr(second, item.name) for item in dataclasses.fields(second)
                   if getattr(second, item.name) != item.default}
        return dataclasses.replace(first, **changed)
    return None


def _cuts_only(step, mode):
    """True for a crop (``fill``) or pad step of Dirpy's, which resizes nothing itself."""
    return step.mode == mode and _stages(step) == {_RESIZE} and not step.enlarge \
        and step.shrink == (mode == "pad")


def _box(step):
    return step.width, step.height


class _Reader:
    """Turns each command into a step; ``save`` into the encoding."""

    def __init__(self):
        self.steps = []
        self.encoding = {}
        self.saved = False
        self.box = None  # the last size a command gave: (width or None, height or None)

    def command(self, name, value):
        if name == "load":
            raise BadTransform("load: loading from a proxy or an upload is not supported; "
                               "the source is the URL path")
        if name not in COMMANDS:
            raise BadTransform(f"unknown command {quoted(name)} (known: {', '.join(COMMANDS)})")
        options = _options(name, value)
        if name == "save":
            if self.saved:
                raise BadTransform("save: given twice")
            self.saved = True
            self._save(options)
            return
        self.steps.append(getattr(self, f"_{name}")(options))

    def transform(self):
        steps = compose(self.steps) or [Transform()]
        if len(steps) > MAX_STEPS:
            raise BadTransform(f"query: {len(steps)} steps once folded; at most {MAX_STEPS}")
        return dataclasses.replace(steps[0], then=tuple(steps[1:]), **self.encoding)

    def _resize(self, options):
        if "pct" in options:
            percent = _whole(options.pop("pct"), "resize", "pct", 1, 1000)
            extra = sorted(set(options) - {"filter"})
            if extra:
                raise BadTransform(f"resize: pct excludes {', '.join(extra)}")
            return Transform(scale=percent / 100, filter=_filter(options))
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
        self.box = size
        mode = {"fill": "cover", "unlock": "force"}.get(modes[0] if modes else "", "fit")
        return Transform(width=width, height=height, mode=mode, enlarge=not shrink,
                         shrink=not grow, filter=_filter(options))

    def _crop(self, options):
        if "box" in options:
            if any(token.startswith("-") for token in options["box"]):
                raise BadTransform(f"crop: box coordinates must not be negative, got "
                                   f"{quoted(','.join(options['box']))}")
            box = tuple(_whole(token, "crop", "box coordinate", 0, 1 << 20)
                        for token in options["box"])
            if not (box[0] < box[2] and box[1] < box[3]):
                raise BadTransform("crop: the box is empty (x1 < x2 and y1 < y2)")
            return Transform(crop_pixels=box)
        if options.pop("border", False):
            if options:
                raise BadTransform("crop: border excludes a size and gravity")
            return Transform(trim=True)
        width, height = self._sized("crop", options)
        return Transform(width=width, height=height, mode="fill", shrink=False,
                         gravity=options.pop("gravity", "center"))

    def _pad(self, options):
        width, height = self._sized("pad", options)
        return Transform(width=width, height=height, mode="pad", enlarge=False,
                         gravity=options.pop("gravity", "center"),
                         background=options.pop("bg", "white"))

    def _sized(self, command, options):
        """The box of a crop or pad: its own size, or the last one a command gave."""
        size = options.pop("size", None) or self.box
        if size is None:
            raise BadTransform(f"{command}: needs a size WxH (or a command before it that "
                               f"gives one)")
        if None in size:
            raise BadTransform(f"{command}: needs both width and height, got "
                               f"{_size_text(size)}")
        self.box = size
        return size

    def _transpose(self, options):
        rotate, flip = options["transpose"]
        return Transform(rotate=rotate, flip=flip)

    def _save(self, options):
        if "fmt" in options:
            self.encoding["format"] = options.pop("fmt")
        if "qual" in options:
            self.encoding["quality"] = options.pop("qual")
        if options.pop("progressive", False):
            self.encoding["progressive"] = True


def _filter(options):
    """The engine filter a resize asks for (Dirpy's PIL names accepted), or None."""
    if "filter" not in options:
        return None
    filter_name = options.pop("filter").lower()
    filter_name = FILTER_ALIASES.get(filter_name, filter_name)
    if filter_name not in FILTERS:
        raise BadTransform(f"resize: unknown filter {quoted(filter_name)} (e.g. lanczos, "
                           f"mitchell, catrom, triangle, point)")
    return filter_name


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
        if not colon and "x" in name and command != "save" and name not in _CONVERT[command]:
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
    "pad": {"bg": (True, _colour), "gravity": (True, _gravity)},
    "save": {"fmt": (True, _format), "qual": (True, _quality), "progressive": (False, None)},
}


def _size_text(size):
    width, height = size
    return f"{width or ''}x{height or ''}"


