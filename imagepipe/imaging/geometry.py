"""Resize geometry, computed from the request and the source size alone.

The three modes follow the original command lines:

* ``FIT``  ``-resize WxH>``: fit inside, keep aspect, never enlarge;
* ``PAD``  ``-resize WxH>`` then centre on a W×H canvas (``-gravity center
  -layers composite``);
* ``CROP`` ``-resize WxH^ -gravity center -crop WxH+0+0``: cover (enlarging
  if needed), then centre-crop to exactly W×H.

Sizes are rounded the way ImageMagick rounds geometry (``floor(x + 0.5)``),
and offsets the way its centre gravity does (floor of half the difference),
so both engines and the original agree on every dimension.
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


def _scaled(length, scale):
    return max(1, int(math.floor(length * scale + 0.5)))


def plan(source, box, mode):
    """The ``Plan`` turning a ``source`` (w, h) into ``box`` (w, h) by ``mode``."""
    sw, sh = source
    if box is None:
        return Plan(resize=(sw, sh))
    bw, bh = box
    if mode is Mode.CROP:
        scale = max(bw / sw, bh / sh)
        rw, rh = (bw, _scaled(sh, scale)) if bw / sw >= bh / sh else (_scaled(sw, scale), bh)
        rw, rh = max(rw, bw), max(rh, bh)
        crop = Box((rw - bw) // 2, (rh - bh) // 2, bw, bh)
        return Plan(resize=(rw, rh), crop=None if (rw, rh) == (bw, bh) else crop)
    if sw <= bw and sh <= bh:
        resized = (sw, sh)
    elif bw / sw <= bh / sh:
        resized = (bw, _scaled(sh, bw / sw))
    else:
        resized = (_scaled(sw, bh / sh), bh)
    if mode is Mode.PAD and resized != (bw, bh):
        rw, rh = resized
        return Plan(resize=resized, canvas=Box((bw - rw) // 2, (bh - rh) // 2, bw, bh))
    return Plan(resize=resized)


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
