"""The one typed model of an on-the-fly transform, and its canonical form.

Every URL dialect (``imagepipe/web/dialects/``) parses into a ``Transform``,
the imaging layer's input type (engines take it, ``geometry`` plans it);
the result cache keys on ``Transform.canonical()`` and signed URLs sign it,
so two URLs that ask for the same picture share one cached result whatever
dialect they came in.  Pure: no Twisted, no engines.
"""

from dataclasses import dataclass, fields

from imagepipe.errors import BadTransform
from imagepipe.imaging.vocabulary import MAX_SIDE

MODES = ("fit", "fill", "cover", "pad", "force")
GRAVITIES = ("center", "north", "south", "east", "west", "northeast", "northwest",
             "southeast", "southwest", "focus")
FORMATS = ("jpg", "png", "gif", "webp", "avif", "auto")
ROTATIONS = (0, 90, 180, 270)
FLIPS = ("", "h", "v")
MAX_SCALE = 10.0
MAX_COORDINATE = 1 << 20
MAX_STEPS = 8  # a transform and the steps after it


@dataclass(frozen=True)
class Transform:
    """What to make of a source picture.

    ``width``/``height`` of None leave that side to the aspect ratio (both
    None: the source size); ``scale`` instead sizes the output as a multiple
    of the source (0.5: half).  ``mode``: ``fit`` inside the box, ``fill``
    the box and crop to it (by ``gravity``), ``cover`` the box without
    cropping, ``pad`` to the box with ``background``, ``force`` both sides
    exactly.  ``enlarge`` allows
    upscaling; ``shrink`` False forbids downscaling.  ``crop`` is a box in
    fractions of the source, ``(left, top, right, bottom)`` in 0..1,
    applied before resizing; ``crop_pixels`` the same box in pixels of the
    upright source (clipped to it).
    ``focus`` is the focal point (x, y) in 0..1 for ``gravity = "focus"``.
    ``format`` None keeps the source's; ``auto`` picks from ``Accept``.

    ``then`` holds further steps, each a ``Transform`` of geometry alone
    (no ``format``, ``quality``, ``progressive`` or steps of its own),
    applied in order to the picture this one makes; the encoding is this
    one's.  One ``Transform`` does its own parts in a fixed order
    (``imagepipe.imaging.geometry``); steps give any other order.
    """

    width: int | None = None
    height: int | None = None
    scale: float | None = None
    mode: str = "fit"
    enlarge: bool = False
    shrink: bool = True
    gravity: str = "center"
    focus: tuple | None = None
    crop: tuple | None = None
    crop_pixels: tuple | None = None
    trim: bool = False
    rotate: int = 0
    flip: str = ""
    format: str | None = None
    quality: int | None = None
    progressive: bool = False
    background: str | None = None
    filter: str | None = None
    then: tuple = ()

    def __post_init__(self):
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is not None and (type(value) is not int or not 1 <= value <= MAX_SIDE):
                raise BadTransform(f"{side}: expected a whole number 1..{MAX_SIDE}, "
                                   f"got {value!r}")
        if self.scale is not None:
            if (isinstance(self.scale, bool) or not isinstance(self.scale, (int, float))
                    or not 0 < self.scale <= MAX_SCALE):
                raise BadTransform(f"scale: expected a number above 0 up to {MAX_SCALE:g}, "
                                   f"got {self.scale!r}")
            if self.width is not None or self.height is not None or self.mode != "fit":
                raise BadTransform("scale: excludes a width, a height and a mode")
        if self.mode not in MODES:
            raise BadTransform(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode != "fit" and (self.width is None or self.height is None):
            raise BadTransform(f"mode {self.mode}: needs both width and height")
        if self.gravity not in GRAVITIES:
            raise BadTransform(f"gravity: expected one of {', '.join(GRAVITIES)}, "
                               f"got {self.gravity!r}")
        if (self.gravity == "focus") != (self.focus is not None):
            raise BadTransform("gravity focus needs a focal point, and only it has one")
        if self.focus is not None:
            _fractions(self.focus, 2, "focus")
        if self.crop is not None:
            left, top, right, bottom = _fractions(self.crop, 4, "crop")
            if not (left < right and top < bottom):
                raise BadTransform("crop: the box is empty (left < right and top < bottom)")
        if self.crop_pixels is not None:
            if self.crop is not None:
                raise BadTransform("crop: a box in fractions or in pixels, not both")
            box = self.crop_pixels
            if not (isinstance(box, tuple) and len(box) == 4
                    and all(type(v) is int and 0 <= v <= MAX_COORDINATE for v in box)):
                raise BadTransform(f"crop: expected 4 whole pixel coordinates "
                                   f"0..{MAX_COORDINATE}")
            if not (box[0] < box[2] and box[1] < box[3]):
                raise BadTransform("crop: the box is empty (left < right and top < bottom)")
        for flag in ("enlarge", "shrink", "trim", "progressive"):
            if type(getattr(self, flag)) is not bool:
                raise BadTransform(f"{flag}: expected true or false")
        if self.rotate not in ROTATIONS:
            raise BadTransform(f"rotate: expected 0, 90, 180 or 270, got {self.rotate!r}")
        if self.flip not in FLIPS:
            raise BadTransform(f"flip: expected h or v, got {self.flip!r}")
        if self.format is not None and self.format not in FORMATS:
            raise BadTransform(f"format: expected one of {', '.join(FORMATS)}, "
                               f"got {self.format!r}")
        if self.quality is not None and (type(self.quality) is not int
                                         or not 1 <= self.quality <= 100):
            raise BadTransform(f"quality: expected a whole number 1..100, got {self.quality!r}")
        if not isinstance(self.then, tuple) or len(self.then) >= MAX_STEPS:
            raise BadTransform(f"steps: at most {MAX_STEPS} in one transform")
        for step in self.then:
            if not isinstance(step, Transform) or step.then or step.format is not None \
                    or step.quality is not None or step.progressive:
                raise BadTransform("steps: a later step changes the geometry only (the "
                                   "first one sets format, quality and progressive)")

    @property
    def steps(self):
        """This transform's own geometry, then each of ``then``, in order."""
        return (self,) + self.then

    def canonical(self):
        """A stable text naming exactly this transform: the cache key and what is signed.

        Only fields that differ from the defaults appear, in a fixed order, so
        equal transforms give equal texts whatever URL they came from.
        """
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value == item.default:
                continue
            if item.name == "then":
                value = "".join(f"[{step.canonical()}]" for step in value)
            parts.append(f"{item.name}:{_text(value)}")
        return "/".join(parts) or "original"


def _fractions(values, count, name):
    if not isinstance(values, tuple) or len(values) != count:
        raise BadTransform(f"{name}: expected {count} numbers")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise BadTransform(f"{name}: expected fractions 0..1, got {value!r}")
    return values


def _text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
