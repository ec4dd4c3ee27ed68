"""What every engine shares: the checks before decoding, and the plan of a call.

``Engine.render`` sniffs the payload against the allow-list, checks the
declared size, the frame count and the outputs against the limits, refuses
truncated JPEGs, computes every variant's geometry, and only then hands a
``RenderCall`` to the engine's own ``_render``.  Engines implement
``_inspect`` (read the header) and ``_render`` (decode, resize, crop, pad,
orient, strip, encode); the rules live here once.
"""

import time
from dataclasses import dataclass

from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import geometry
from imagepipe.imaging.formats import declared_size, sniff

_ALLOWED_TEXT = "JPEG, PNG, GIF, WebP, AVIF, HEIC"


class Deadline:
    """The per-call time limit, checked after every step of a call.

    Checked between decode, resizes and encodes rather than from inside a
    library's loops: a callback into Python for every row waits for the
    interpreter lock and stalls the other worker threads.  One step is
    bounded by the pixel limits.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def check(self):
        """Raise ``TooLarge`` once the call has run past its limit."""
        if time.monotonic() > self.expires:
            raise TooLarge(f"image: MAGICK_TIME_LIMIT ({self.seconds:g} s) reached")


@dataclass(frozen=True)
class RenderCall:
    """One checked call, ready for an engine: the source, and per variant its plan."""

    data: bytes
    info: object  # SourceInfo
    variants: tuple  # VariantSpec
    outputs: tuple  # Format of each variant
    plans: tuple  # geometry.Plan of each variant
    options: object  # EncodeOptions
    deadline: Deadline

    @property
    def animated(self):
        """True when some output keeps every frame (GIF or WebP from an animation)."""
        return self.info.frames > 1 and any(fmt.animation for fmt in self.outputs)

    @property
    def largest(self):
        """The largest full-frame size any variant resizes to (the shrink-on-load hint)."""
        return max((p.resize for p in self.plans), key=lambda size: size[0] * size[1])

    def order(self):
        """Variant indexes, largest resize first (the order of the cascade)."""
        return sorted(range(len(self.variants)),
                      key=lambda i: self.plans[i].resize[0] * self.plans[i].resize[1],
                      reverse=True)

    def verbatim(self, index):
        """True when variant ``index`` is the verified source bytes, unchanged."""
        return self.variants[index].verbatim and self.outputs[index] == self.info.format


class Engine:
    """Base of the engines: checks and planning; subclasses do the pixels."""

    name = None

    def __init__(self, limits, formats):
        self.limits = limits  # ImageLimits (replaced on reload)
        self.formats = frozenset(formats)  # names of the formats this engine writes

    def inspect(self, data):
        """Sniff ``data`` and read its header; return its ``SourceInfo``."""
        fmt = sniff(data)
        if fmt is None or fmt.name not in self.formats:
            raise ClientError(f"image: not an allowed image type (allowed: {_ALLOWED_TEXT})")
        declared = declared_size(fmt, data)
        if declared:
            self.check_pixels(*declared, 1)
        return self._inspect(data, fmt)

    def check_pixels(self, width, height, frames):
        """Refuse more than ``max_pixels`` (frames summed)."""
        pixels = width * height * frames
        if pixels > self.limits.max_pixels:
            raise TooLarge(f"image: {width}x{height}"
                           f"{f' x {frames} frames' if frames > 1 else ''} = "
                           f"{pixels} pixels exceed max_pixels ({self.limits.max_pixels})")

    def render(self, data, variants, options):
        """Make every variant of ``data``; return their encoded bytes in order.

        A ``verbatim`` variant returns ``data`` itself, once the whole image
        has been decoded without error.
        """
        info = self.inspect(data)
        if info.frames > self.limits.max_frames:
            raise TooLarge(f"image: {info.frames} frames exceed max_frames "
                           f"({self.limits.max_frames})")
        self.check_pixels(info.width, info.height, info.frames)
        _check_complete(info.format, data)
        upright = geometry.oriented((info.width, info.height), info.orientation)
        outputs = tuple(v.format or info.format for v in variants)
        plans = tuple(geometry.plan(upright, v.box, v.mode) for v in variants)
        for plan, fmt in zip(plans, outputs):
            w, h = plan.output
            frames = info.frames if fmt.animation else 1
            if w * h * frames > self.limits.max_pixels:
                raise TooLarge(f"size: output {w}x{h} exceeds max_pixels "
                               f"({self.limits.max_pixels})")
        call = RenderCall(data, info, tuple(variants), outputs, plans, options,
                          Deadline(self.limits.time_limit))
        results = self._render(call)
        call.deadline.check()
        return results

    def _inspect(self, data, fmt):
        raise NotImplementedError

    def _render(self, call):
        raise NotImplementedError


def _check_complete(fmt, data):
    """Refuse a JPEG without an end-of-image marker after its scan data.

    Decoders fill a truncated JPEG's missing part with grey, silently; an
    image service must say so instead of storing it.
    """
    if fmt.name != "jpg":
        return
    scan = data.find(b"\xff\xda")
    if scan < 0 or data.rfind(b"\xff\xd9") < scan:
        raise ClientError("image: JPEG data is truncated (no end-of-image marker)")
