"""Resize geometry, computed from the request and the source size alone.

The three modes of a stored variant follow the original command lines:

* ``FIT``  ``-resize WxH>``: fit inside, keep aspect, never enlarge;
* ``PAD``  ``-resize WxH>`` then centre on a W×H canvas (``-gravity center
  -layers composite``);
* ``CROP`` ``-resize WxH^ -gravity center -crop WxH+0+0``: cover (enlarging
  if needed), then centre-crop to exactly W×H.

An on-the-fly ``Transform`` (``imagepipe.imaging.transform``) is made in this
order, and ``transform_plan`` gives every size and offset of it:

1. EXIF orientation: the source is made upright;
2. crop box: ``transform.crop`` fractions of the upright source become
   pixels (``crop_box``), or ``transform.crop_pixels`` is clipped to it
   (``pixel_box``);
3. trim: the uniform border is removed (the engines find it on the pixels,
   then plan again with that ``trim`` box);
4. rotate, clockwise by 90, 180 or 270 degrees (``rotated``);
5. flip: ``h`` mirrors left and right, ``v`` turns upside down;
6. resize by mode (``fitted``): ``fit`` inside the box, ``fill`` it,
   ``cover`` it, ``pad`` to it, ``force`` both sides; ``scale`` forces the
   size times it;
7. crop (``fill``) or canvas (``pad``) placed by gravity (``placed``);
8. flatten alpha onto the background when the output format has none;
9. strip metadata, keeping the colour profile;
10. encode.

A transform with further steps (``Transform.then``) runs 2-7 once per step,
each on the picture the step before made; 8-10 once at the end.

The modes of a stored variant are ``fitted`` too: ``FIT`` and ``PAD`` are
``fit`` and ``pad`` without enlarging, ``CROP`` is ``fill`` with enlarging,
all centred.

Sizes are rounded the way ImageMagick rounds geometry (``floor(x + 0.5)``,
at least 1), and offsets the way its centre gravity does (floor of half the
difference), so both engines and the original agree on every dimension.
"""

import enum
import math
from dataclasses import dataclass


class Mode(enum.Enum):
    """How a variant meets its W×H box."""

    FIT = "fit"
    PAD = "pad"
    CROP = "crop"


@dataclass(frozen=True)
class Box:
    """A rectangle: offset and size in pixels."""

    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Plan:
    """What to do to a full source frame to get one variant.

    ``resize`` is the full-frame size after resizing (the source size when
    nothing is resized); then ``crop`` cuts a box out of it, or ``canvas``
    places it on a larger canvas at ``canvas.left, canvas.top``.
    """

    resize: tuple
    crop: Box | None = None
    canvas: Box | None = None

    @property
    def output(self):
        """The final width and height."""
        if self.crop:
            return self.crop.width, self.crop.height
        if self.canvas:
            return self.canvas.width, self.canvas.height
        return self.resize


@dataclass(frozen=True)
class TransformPlan:
    """Every size and offset of one transform of an upright source, in order.

    ``region`` is the crop box cut from the upright source, ``trim`` the box
    then kept by trimming (in the region's pixels); None cuts nothing.
    ``fit`` resizes, crops or pads what is left once rotated and flipped.
    """

    region: Box | None
    trim: Box | None
    fit: Plan

    @property
    def output(self):
        """The final width and height."""
        return self.fit.output


_PLAIN = {Mode.FIT: "fit", Mode.PAD: "pad", Mode.CROP: "fill"}

# Gravity along each axis: 0 the near edge (west, north), 1 the centre, 2 the far edge.
_ACROSS = {"west": 0, "east": 2}
_DOWN = {"north": 0, "south": 2}


def _rounded(value):
    return int(math.floor(value + 0.5))


def _scaled(length, scale):
    return max(1, _rounded(length * scale))


def plan(source, box, mode):
    """The ``Plan`` turning a ``source`` (w, h) into ``box`` (w, h) by ``mode``."""
    if box is None:
        return Plan(resize=tuple(source))
    return fitted(source, box, _PLAIN[mode], enlarge=mode is Mode.CROP)


def fitted(source, box, mode, enlarge=False, gravity="center", focus=None, shrink=True):
    """The ``Plan`` turning ``source`` (w, h) into ``box`` (w or None, h or None).

    ``mode`` is ``fit``, ``fill``, ``cover`` (``fill`` without the crop),
    ``pad`` or ``force`` (all but ``fit`` need both sides); without ``enlarge`` no side grows, without ``shrink`` none
    shrinks.  ``gravity`` (and
    ``focus``, fractions (x, y)) places the crop of ``fill`` and the image on
    the canvas of ``pad`` (where ``focus`` is the centre).
    """
    sw, sh = source
    bw, bh = box
    if bw is None and bh is None:
        return Plan(resize=(sw, sh))
    if mode == "force":
        return Plan(resize=tuple(b if (enlarge or b <= s) and (shrink or b >= s) else s
                                 for b, s in ((bw, sw), (bh, sh))))
    ratios = [b / s for b, s in ((bw, sw), (bh, sh)) if b is not None]
    scale = max(ratios) if mode in ("fill", "cover") else min(ratios)
    if not enlarge:
        scale = min(scale, 1.0)
    if not shrink:
        scale = max(scale, 1.0)
    # The side that sets the scale meets its box exactly, whatever the float error.
    rw, rh = (b if b is not None and scale == b / s else _scaled(s, scale)
              for b, s in ((bw, sw), (bh, sh)))
    if mode == "fill":
        inner = (min(bw, rw), min(bh, rh))
        if inner == (rw, rh):
            return Plan(resize=(rw, rh))
        left, top = placed((rw, rh), inner, gravity, focus)
        return Plan(resize=(rw, rh), crop=Box(left, top, *inner))
    if mode == "pad" and (rw, rh) != (bw, bh):
        left, top = placed((bw, bh), (rw, rh), "center" if gravity == "focus" else gravity)
        return Plan(resize=(rw, rh), canvas=Box(left, top, bw, bh))
    return Plan(resize=(rw, rh))


def placed(outer, inner, gravity, focus=None):
    """The (left, top) of ``inner`` (w, h) inside ``outer`` (w, h), placed by ``gravity``.

    West and north put it at the near edge, east and south at the far edge,
    centre at the floor of half the difference; the corners combine both.
    ``focus`` centres it on the point ``(x, y)`` (fractions of ``outer``),
    offsets floored as for the centre (so (0.5, 0.5) is the centre), kept
    inside ``outer``.
    """
    if gravity == "focus":
        return tuple(min(max(math.floor(fraction * o - i / 2), 0), o - i)
                     for fraction, o, i in zip(focus, outer, inner))
    across = next((w for name, w in _ACROSS.items() if gravity.endswith(name)), 1)
    down = next((w for name, w in _DOWN.items() if gravity.startswith(name)), 1)
    return ((outer[0] - inner[0]) * across // 2, (outer[1] - inner[1]) * down // 2)


def crop_box(size, fractions):
    """The ``Box`` of ``size`` (w, h) that ``fractions`` (left, top, right, bottom) name.

    Each edge is rounded like a size; the box keeps at least one pixel.
    """
    (left, right), (top, bottom) = (_span(start, end, length) for start, end, length in
                                    ((fractions[0], fractions[2], size[0]),
                                     (fractions[1], fractions[3], size[1])))
    return Box(left, top, right - left, bottom - top)


def pixel_box(size, box):
    """The ``Box`` of ``size`` (w, h) that pixel edges ``box`` (left, top, right, bottom)
    keep once clipped to it; ``ValueError`` when nothing of it is inside."""
    left, top, right, bottom = box
    width, height = size
    if left >= width or top >= height:
        raise ValueError(f"crop: box {left},{top},{right},{bottom} lies outside the "
                         f"{width}x{height} source")
    return Box(left, top, min(right, width) - left, min(bottom, height) - top)


def _span(start, end, length):
    first = min(_rounded(start * length), length - 1)
    return first, min(max(_rounded(end * length), first + 1), length)


def rotated(size, degrees):
    """The (w, h) of ``size`` once rotated by ``degrees`` (a multiple of 90)."""
    width, height = size
    return (height, width) if degrees % 180 == 90 else (width, height)


def transform_plan(upright, transform, trim=None):
    """The ``TransformPlan`` of ``transform`` on an ``upright`` (w, h) source.

    ``trim`` is the box trimming keeps, in the pixels of the crop box (or of
    the source when there is none); None before it is known, or when the
    transform does not trim.  Boxes that keep everything become None.
    ``ValueError`` when a pixel crop box lies outside the source.
    """
    region = None
    if transform.crop:
        region = crop_box(upright, transform.crop)
    elif transform.crop_pixels:
        region = pixel_box(upright, transform.crop_pixels)
    if region == Box(0, 0, *upright):
        region = None
    size = (region.width, region.height) if region else tuple(upright)
    if trim == Box(0, 0, *size):
        trim = None
    if trim:
        size = (trim.width, trim.height)
    size = rotated(size, transform.rotate)
    if transform.scale is not None:
        box = tuple(_scaled(side, transform.scale) for side in size)
        fit = fitted(size, box, "force", enlarge=True)
    else:
        fit = fitted(size, (transform.width, transform.height), transform.mode,
                     transform.enlarge, transform.gravity, transform.focus, transform.shrink)
    return TransformPlan(region=region, trim=trim, fit=fit)


def oriented(size, orientation):
    """The (w, h) of an image of stored ``size`` once EXIF ``orientation`` is applied."""
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def base_for(plan_resize, bases, factor=2.0):
    """Pick the smallest base image a resize to ``plan_resize`` can start from.

    ``bases`` are (w, h) sizes of full-frame images already made in this call
    (the decoded source last).  A base qualifies when it is at least
    ``factor`` times the target on both sides, so that resampling from it is
    no worse than from the source; an exact match qualifies too (no resize
    needed).  Returns an index into ``bases``, or the last index when none
    qualifies.
    """
    tw, th = plan_resize
    best = len(bases) - 1
    for index, (bw, bh) in enumerate(bases):
        exact = (bw, bh) == (tw, th)
        if exact or (bw >= factor * tw and bh >= factor * th):
            if exact or bw * bh < bases[best][0] * bases[best][1]:
                best = index
    return best
