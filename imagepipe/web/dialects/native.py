"""imagepipe's own URL grammar: ``name:value`` options in any order, then the source.

    /w:300/h:200/m:fill/g:ne/f:webp/q:80/photos/cat.jpg
    /preset:thumb/photos/cat.jpg
    /s:300x200/-/photos/odd:name.jpg        ("-" ends the options explicitly)

Options (long or short name):

| option | value |
|---|---|
| `width` `w`, `height` `h` | whole pixels |
| `size` `s` | `WxH`, `Wx` or `xH` |
| `scale` `sc` | a multiple of the source size instead of a size, above 0 up to 10 (`0.5`) |
| `mode` `m` | `fit`, `fill`, `cover` (fill without the crop), `pad`, `force` |
| `enlarge` `e`, `shrink` `sh`, `trim` `t`, `progressive` `p` | `0` or `1` (`shrink:0`: never make it smaller) |
| `gravity` `g` | `center` `north` `south` `east` `west` `northeast` `northwest` `southeast` `southwest`, or `c` `n` `s` `e` `w` `ne` `nw` `se` `sw` |
| `focus` `fp` | `x,y` in 0..1 (sets gravity focus) |
| `crop` `c` | `left,top,right,bottom` in 0..1 of the source |
| `cropbox` `cb` | `left,top,right,bottom` in pixels of the source (clipped to it) |
| `rotate` `r` | `0` `90` `180` `270`; `flip` `fl`: `h` or `v` |
| `format` `f` | `jpg` `png` `gif` `webp` `avif` `auto` |
| `quality` `q` | 1..100 |
| `background` `bg` | `RGB` or `RRGGBB` hex, or a colour name |
| `filter` `fi` | an ImageMagick filter name |
| `preset` `pr` | a preset's options, from the configuration |

The first segment that is not a known option starts the source path.  An
option given twice is refused.  In presets-only mode every option must come
from a preset.
"""

import re
from dataclasses import dataclass, field

from imagepipe.errors import ClientError
from imagepipe.declarations import Setting, mount_settings
from imagepipe.paths import PathRules
from imagepipe.imaging.vocabulary import FILTERS, url_colour
from imagepipe.web.dialects import NotAllowed, Request
from imagepipe.imaging.transform import BadTransform, Transform

_SHORT = {"w": "width", "h": "height", "s": "size", "sc": "scale", "m": "mode", "e": "enlarge",
          "sh": "shrink", "cb": "cropbox", "t": "trim",
          "p": "progressive", "g": "gravity", "fp": "focus", "c": "crop", "r": "rotate",
          "fl": "flip", "f": "format", "q": "quality", "bg": "background", "fi": "filter",
          "pr": "preset"}
_NAMES = frozenset(_SHORT.values())
_GRAVITY = {"c": "center", "n": "north", "s": "south", "e": "east", "w": "west",
            "ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest"}


@dataclass(frozen=True)
class NativeSettings:
    """Presets (name -> option segments such as ``("w:300", "m:fill")``) and the mode."""

    presets: dict = field(default_factory=dict)
    presets_only: bool = False


SECTIONS = {
    "http/native": "imagepipe's own URL grammar: name:value options, then the source.",
    "http/native/presets": "Named presets: name = option segments, e.g. "
                           "thumb = w:150/h:150/m:fill.",
}
FREE_SECTIONS = {"http/native/presets": "string"}
SETTINGS = mount_settings(
    "native", "/r/", True, "Serve imagepipe's own URL grammar (docs/on-the-fly.md).",
    prefix_description="URL prefix of this dialect: one path segment between slashes.",
    source_description="Where sources come from: tree (the store, on its backend), the "
                       "[[origins]] HTTP servers, or the [s3] bucket.") + (
    Setting("http/native", "presets_only", "boolean", "false",
            "Refuse every option that does not come from a preset (HTTP 403)."),
)
READS_QUERY = False


def settings_from(values, rules):
    """``NativeSettings`` from ``[http/native]``; ``ValueError`` names a bad preset."""
    presets = {name: tuple(text.strip("/").split("/")) for name, text in values["presets"].items()}
    settings = NativeSettings(presets=presets, presets_only=values["presets_only"])
    for name in presets:
        try:
            parse(f"preset:{name}/check.jpg", None, settings)
        except ValueError as error:
            raise ValueError(f"presets: {name} = {values['presets'][name]!r}: {error}") from None
    return settings

def parse(path, query=None, settings=NativeSettings()):
    """The ``Request`` a native URL path asks for."""
    segments = path.split("/")
    options, index = {}, 0
    while index < len(segments):
        segment = segments[index]
        if segment == "-":
            index += 1
            break
        name, colon, value = segment.partition(":")
        name = _SHORT.get(name, name)
        if not colon or name not in _NAMES:
            break
        if name == "preset":
            _add_preset(options, value, settings)
        elif settings.presets_only:
            raise NotAllowed(f"{name}: only presets are allowed here")
        else:
            _add(options, name, value)
        index += 1
    source = "/".join(segments[index:])
    if not source:
        raise BadTransform("path: no source image after the options")
    try:
        source = PathRules().clean(source, "path")
    except ClientError as error:
        raise BadTransform(str(error)) from None
    if settings.presets_only and not options:
        raise NotAllowed("only presets are allowed here")
    return Request(source, _transform(options))


def _add_preset(options, value, settings):
    segments = settings.presets.get(value)
    if segments is None:
        raise NotAllowed(f"preset: unknown preset {value!r}")
    for segment in segments:
        name, _, option = segment.partition(":")
        _add(options, _SHORT.get(name, name), option)


def _add(options, name, value):
    if name in options:
        raise BadTransform(f"{name}: given twice")
    options[name] = value


def _transform(options):
    kwargs = {}
    for name, value in options.items():
        if name == "size":
            width, x, height = value.partition("x")
            if not x or not (width or height):
                raise BadTransform(f"size: expected WxH, Wx or xH, got {value!r}")
            for side, text in (("width", width), ("height", height)):
                if text:
                    if side in options:
                        raise BadTransform(f"{side}: given twice (also in size)")
                    kwargs[side] = _whole(text, side)
        elif name in ("width", "height", "quality"):
            kwargs[name] = _whole(value, name)
        elif name == "rotate":
            kwargs[name] = _whole(value, name, low=0)
        elif name in ("enlarge", "shrink", "trim", "progressive"):
            if value not in ("0", "1"):
                raise BadTransform(f"{name}: expected 0 or 1, got {value!r}")
            kwargs[name] = value == "1"
        elif name == "gravity":
            kwargs[name] = _GRAVITY.get(value, value)
        elif name == "focus":
            kwargs["gravity"] = "focus"
            kwargs[name] = _fractions(value, 2, name)
        elif name == "crop":
            kwargs[name] = _fractions(value, 4, name)
        elif name == "cropbox":
            kwargs["crop_pixels"] = _pixels(value)
        elif name == "scale":
            if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,6})?", value):
                raise BadTransform(f"scale: expected a number such as 0.5, got {value!r}")
            kwargs[name] = float(value)
        elif name == "background":
            kwargs[name] = _colour(value)
        elif name == "filter":
            if value not in FILTERS:
                raise BadTransform(f"filter: unknown filter {value!r}")
            kwargs[name] = value
        else:  # mode, flip, format: Transform checks the value
            kwargs[name] = value
    return Transform(**kwargs)


def _whole(text, name, low=1):
    if not text.isdigit() or len(text) > 6 or int(text) < low:
        raise BadTransform(f"{name}: expected a whole number, got {text!r}")
    return int(text)


def _pixels(text):
    parts = text.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"[0-9]{1,7}", part) for part in parts):
        raise BadTransform(f"cropbox: expected left,top,right,bottom in whole pixels, "
                           f"got {text!r}")
    return tuple(int(part) for part in parts)


def _fractions(text, count, name):
    parts = text.split(",")
    if len(parts) != count:
        raise BadTransform(f"{name}: expected {count} numbers separated by commas, "
                           f"got {text!r}")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise BadTransform(f"{name}: expected numbers, got {text!r}") from None
    if not all(0 <= value <= 1 for value in values):
        raise BadTransform(f"{name}: expected fractions 0..1, got {text!r}")
    return values


def _colour(text):
    colour = url_colour(text)
    if colour is not None:
        return colour
    raise BadTransform(f"background: expected RGB or RRGGBB hex or a colour name, "
                       f"got {text!r}")
