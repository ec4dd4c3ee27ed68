"""What every engine shares: the checks before decoding, and the plan of a call.

``Engine.render`` (the stored variants of a store call) and
``Engine.transform`` (one on-the-fly ``Transform``) sniff the payload
against the allow-list, check the declared size, the frame count and the
outputs against the limits, refuse truncated JPEGs, compute every size and
offset (``geometry``) and choose the output format, and only then hand a
``RenderCall`` or ``TransformCall`` to the engine's own ``_render`` or
``_transform``.  Engines implement ``_inspect`` (read the header),
``_render`` and ``_transform`` (decode, orient, cut, resize, crop, pad,
strip, encode); the rules live here once.
"""

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass

from zope.interface import implementer

from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import geometry, memory
from imagepipe.imaging.formats import (by_name, declared_frames, declared_size, jpeg_scan_floor,
                                      metadata_bytes, sniff)
from imagepipe.imaging.interfaces import IEngine
from imagepipe.imaging.vocabulary import MAX_SIDE

_ALLOWED_TEXT = "JPEG, PNG, GIF, WebP, AVIF, HEIC"


# Formats ``auto`` keeps when the client accepts none of its choices: every
# browser shows them.
_WEB_FORMATS = ("jpg", "png", "gif", "webp")

# Colour names that show nothing: no canvas or flattening background on a
# format without alpha.
_CLEAR = ("transparent", "none")


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
        self.spans = {}  # step name -> seconds spent in it (what /metrics reports)
        self._since = time.monotonic()

    def check(self, span=None):
        """Raise ``TooLarge`` once the call has run past its limit.

        ``span`` names the step that just ended (decode, resize, encode): the
        time since the previous check is counted to it.
        """
        now = time.monotonic()
        if span is not None:
            self.spans[span] = self.spans.get(span, 0.0) + now - self._since
        self._since = now
        if now > self.expires:
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
        """The largest full-frame size any variant resizes to."""
        return max((p.resize for p in self.plans), key=lambda size: size[0] * size[1])

    @property
    def shrink_to(self):
        """The upright size a JPEG may be decoded down to (shrink-on-load), or None."""
        return _shrinkable(self.info, self.largest)

    def order(self):
        """Variant indexes, largest resize first (the order of the cascade)."""
        return sorted(range(len(self.variants)),
                      key=lambda i: self.plans[i].resize[0] * self.plans[i].resize[1],
                      reverse=True)

    def verbatim(self, index):
        """True when variant ``index`` is the verified source bytes, unchanged."""
        return self.variants[index].verbatim and self.outputs[index] == self.info.format

    def canvas(self, fmt):
        """The colour of a pad canvas written as ``fmt``."""
        return _canvas(fmt, self.options.background)


@dataclass(frozen=True)
class TransformCall:
    """One checked on-the-fly transform, ready for an engine.

    ``format`` is the output format, or None for "PNG if the decoded source
    has alpha, else JPEG" (``output`` decides once it is decoded); ``plan``
    is the ``geometry.TransformPlan`` of its first step before trimming;
    ``options`` are the defaults with what the transform sets.
    """

    data: bytes
    info: object  # SourceInfo
    transform: object  # imagepipe.imaging.transform.Transform
    format: object  # Format or None
    plan: geometry.TransformPlan
    options: object  # EncodeOptions
    deadline: Deadline

    @property
    def animated(self):
        """True when the output keeps every frame (GIF or WebP from an animation)."""
        return self.info.frames > 1 and self.format is not None and self.format.animation

    @property
    def frames(self):
        """How many frames the output has."""
        return self.info.frames if self.animated else 1

    @property
    def shrink_to(self):
        """The upright size a JPEG may be decoded down to (shrink-on-load), or None.

        Never with a crop box or trim: they cut the source at full size.
        """
        if self.transform.crop or self.transform.crop_pixels or self.transform.trim:
            return None
        return _shrinkable(self.info, geometry.rotated(self.plan.fit.resize,
                                                       self.transform.rotate))

    def output(self, alpha):
        """The ``Format`` to write, once it is known whether the decoded source has ``alpha``."""
        return self.format or by_name("png" if alpha else "jpg")

    def canvas(self, fmt, step=None):
        """The colour of a pad canvas written as ``fmt``: the step's background if it shows."""
        chosen = (step or self.transform).background
        if chosen is None or (chosen in _CLEAR and not fmt.alpha):
            return _canvas(fmt, self.options.background)
        return chosen


@implementer(IEngine)
class Engine:
    """Base of the engines: checks and planning; subclasses do the pixels."""

    name = None

    def __init__(self, limits, formats):
        self.limits = limits  # ImageLimits (replaced on reload)
        self.formats = frozenset(formats)  # names of the formats this engine writes

    def inspect(self, data):
        """Sniff ``data`` and read its header; return its ``SourceInfo``.

        Everything that can be told from the bytes alone is checked before a
        decoder sees them: the declared size, the frame count of a GIF, the
        inflated size of PNG metadata, and whether a JPEG's scan data can
        fill its frame.
        """
        fmt = sniff(data)
        if fmt is None or fmt.name not in self.formats:
            raise ClientError(f"image: not an allowed image type (allowed: {_ALLOWED_TEXT})")
        declared = declared_size(fmt, data)
        if declared:
            check_sides(*declared)
            self.check_pixels(*declared, 1)
        frames = declared_frames(fmt, data, self.limits.max_frames)
        if frames is not None:
            self.check_frames(frames)
        limit = self.limits.max_metadata_bytes
        if metadata_bytes(fmt, data, limit) > limit:
            raise TooLarge(f"image: its metadata (text, colour profile) inflates past "
                           f"max_metadata_bytes ({limit})")
        if fmt.name == "jpg":
            _check_complete(data)
        info = self._inspect(data, fmt)
        check_sides(info.width, info.height)
        return info

    def check_frames(self, frames):
        """Refuse more than ``max_frames``."""
        if frames > self.limits.max_frames:
            raise TooLarge(f"image: {frames} frames exceed max_frames "
                           f"({self.limits.max_frames})")

    def check_pixels(self, width, height, frames):
        """Refuse more than ``max_pixels`` (frames summed)."""
        pixels = width * height * frames
        if pixels > self.limits.max_pixels:
            raise TooLarge(f"image: {width}x{height}"
                           f"{f' x {frames} frames' if frames > 1 else ''} = "
                           f"{pixels} pixels exceed max_pixels ({self.limits.max_pixels})")

    def check_output(self, plan, frames, result=True):
        """Refuse a ``geometry.Plan`` beyond the limits.

        Its resize and output count against ``max_pixels`` (frames summed):
        covering a thin source can make a huge image before the crop brings
        it back to size.  A ``result`` (anything but the verified source
        bytes stored unchanged) is also held to ``max_result_side`` and
        ``max_result_pixels`` per frame, however small the source.
        """
        for what, (width, height) in (("output", plan.output), ("resize to", plan.resize)):
            if width * height * frames > self.limits.max_pixels:
                raise TooLarge(f"size: {what} {width}x{height}"
                               f"{f' x {frames} frames' if frames > 1 else ''} exceeds "
                               f"max_pixels ({self.limits.max_pixels})")
        width, height = plan.output
        if result and max(width, height) > self.limits.max_result_side:
            raise TooLarge(f"size: output {width}x{height} exceeds max_result_side "
                           f"({self.limits.max_result_side})")
        if result and width * height > self.limits.max_result_pixels:
            raise TooLarge(f"size: output {width}x{height} exceeds max_result_pixels "
                           f"({self.limits.max_result_pixels})")

    def render(self, data, variants, options):
        """Make every variant of ``data``; return their encoded bytes in order.

        A ``verbatim`` variant returns ``data`` itself, once the whole image
        has been decoded without error.
        """
        with _trimmed_when_refused(data):
            return self._render_checked(data, variants, options)

    def _render_checked(self, data, variants, options):
        info = self._checked(data)
        upright = geometry.oriented((info.width, info.height), info.orientation)
        outputs = tuple(v.format or info.format for v in variants)
        plans = tuple(geometry.plan(upright, v.box, v.mode) for v in variants)
        call = RenderCall(data, info, tuple(variants), outputs, plans, options,
                          Deadline(self.limits.time_limit))
        for index, (plan, fmt) in enumerate(zip(plans, outputs)):
            self.check_output(plan, info.frames if fmt.animation else 1,
                              result=not call.verbatim(index))
        results = self._render(call)
        call.deadline.check()
        return results

    def transform(self, data, transform, defaults, accept=()):
        """Make ``transform`` (a ``Transform``) of ``data``; return it ``Rendered``.

        ``defaults`` (``EncodeOptions``) give what the transform leaves
        unset; ``accept`` names the formats the client takes, preferred
        first, for ``format="auto"``.  The order of the steps is documented
        in ``geometry``.
        """
        with _trimmed_when_refused(data):
            return self._transform_checked(data, transform, defaults, accept)

    def transform_source(self, storage, path, transform, defaults, accept=()):
        """``transform`` of the stored file at ``path``: (Rendered, version, mtime).

        ``storage`` is an ``IStorage`` (a ``Tree``, a ``Bucket``); the version
        is the one it gives for the bytes read.
        """
        started = time.monotonic()
        data, version, modified = storage.source(path)
        fetched = time.monotonic() - started
        rendered = self.transform(data, transform, defaults, accept)
        return (dataclasses.replace(rendered, spans={**rendered.spans, "fetch": fetched}),
                version, modified)

    def _transform_checked(self, data, transform, defaults, accept):
        info = self._checked(data)
        upright = geometry.oriented((info.width, info.height), info.orientation)
        call = TransformCall(data, info, transform, self._output_format(transform, info, accept),
                             self._planned(upright, transform), _merged(transform, defaults),
                             Deadline(self.limits.time_limit))
        # The steps up to the first that trims are checked before decoding;
        # the sizes after a trim are known only once its pixels are, so every
        # step is checked again, on the size it gets, before it resizes (``steps``).
        size = upright
        for step in transform.steps:
            plan = self._planned(size, step)
            self.check_output(plan.fit, call.frames)
            if step.trim:
                break
            size = plan.output
        rendered = self._transform(call)
        call.deadline.check("encode")
        return dataclasses.replace(rendered, spans=call.deadline.spans)

    def steps(self, call, picture, ops):
        """Make every step of ``call`` on the decoded upright ``picture``: (picture, plan).

        ``ops`` does the pixels in the engine's own terms (``format``,
        ``size``, ``cut``, ``trim_box``, ``turn``, ``resize``, ``place``);
        each step is planned on the size the step before made and checked
        against the limits before anything is resized; the last step's plan
        is returned.
        """
        plan = call.plan
        upright = geometry.oriented((call.info.width, call.info.height), call.info.orientation)
        for index, step in enumerate(call.transform.steps):
            size = ops.size(picture) if index else upright
            if index:
                plan = self._planned(size, step)
                self.check_output(plan.fit, call.frames)
            picture = ops.cut(picture, plan.region)
            if step.trim:
                plan = self._planned(size, step, ops.trim_box(picture))
                self.check_output(plan.fit, call.frames)
                picture = ops.cut(picture, plan.trim)
            picture = ops.turn(picture, step.rotate, step.flip)
            if ops.size(picture) != plan.fit.resize:
                picture = ops.resize(picture, plan.fit.resize, step.filter or call.options.filter)
            call.deadline.check("resize")
            picture = ops.place(picture, plan.fit, call.canvas(ops.format, step))
        return picture, plan

    def _planned(self, size, step, trim=None):
        """The ``geometry.TransformPlan`` of ``step`` on a picture of ``size``."""
        try:
            return geometry.transform_plan(size, step, trim)
        except ValueError as error:  # a pixel crop box outside the picture
            raise ClientError(str(error)) from None

    def _checked(self, data):
        """The ``SourceInfo`` of ``data``, once every check before decoding has passed."""
        info = self.inspect(data)
        self.check_frames(info.frames)
        self.check_pixels(info.width, info.height, info.frames)
        return info

    def _output_format(self, transform, info, accept):
        """The ``Format`` a transform writes, or None for PNG-or-JPEG by alpha.

        ``auto``: the first of ``accept`` this engine writes, else the
        source's when every browser shows it.  None: the source's.  Either
        falls back to PNG-or-JPEG.
        """
        if transform.format == "auto":
            for name in accept:
                fmt = by_name(name)
                if fmt is not None and fmt.name in self.formats:
                    return fmt
            keep = info.format.name in _WEB_FORMATS
        elif transform.format is None:
            keep = True
        else:
            fmt = by_name(transform.format)
            if fmt.name not in self.formats:
                raise ClientError(f"format: this server cannot write {fmt.name} "
                                  f"(it writes {', '.join(sorted(self.formats))})")
            return fmt
        return info.format if keep and info.format.name in self.formats else None

    def _inspect(self, data, fmt):
        raise NotImplementedError

    def _render(self, call):
        raise NotImplementedError

    def _transform(self, call):
        raise NotImplementedError


def _merged(transform, defaults):
    """``defaults`` with the encoder settings ``transform`` sets.

    A clear background cannot flatten anything: the default is used then.
    """
    background = transform.background
    return dataclasses.replace(
        defaults,
        quality=transform.quality or defaults.quality,
        progressive=transform.progressive or defaults.progressive,
        background=background if background and background not in _CLEAR
        else defaults.background,
        filter=transform.filter or defaults.filter)


def _canvas(fmt, background):
    """A pad canvas is transparent where ``fmt`` can show it, else ``background``."""
    return "transparent" if fmt.alpha else background


def _shrinkable(info, upright):
    """``upright`` when a JPEG source is larger: its decoder can shrink it on load."""
    full = geometry.oriented((info.width, info.height), info.orientation)
    if info.format.name != "jpg" or upright == full:
        return None
    return upright


@contextmanager
def _trimmed_when_refused(data):
    """Give the heap back to the system when a job on a large source fails."""
    try:
        yield
    except Exception:
        if len(data) >= memory.TRIM_AFTER:
            memory.trim()
        raise


def check_sides(width, height):
    """Refuse a picture with no pixels, or a side no encoder writes."""
    if width < 1 or height < 1:
        raise ClientError(f"image: declares a {width}x{height} picture")
    if max(width, height) > MAX_SIDE:
        raise ClientError(f"image: declares {width}x{height}: a side over {MAX_SIDE} "
                          f"pixels")


def _check_complete(data):
    """Refuse a JPEG that was cut short.

    Decoders fill a truncated JPEG's missing part with grey, silently; an
    image service must say so instead of storing it.  Truncated means no
    end-of-image marker after the scan data, or less scan data than the
    frame's blocks need (``formats.jpeg_scan_floor``): an end-of-image
    marker right after a few bytes does not make a picture.
    """
    scan = data.find(b"\xff\xda")
    if scan < 0 or data.rfind(b"\xff\xd9") < scan:
        raise ClientError("image: JPEG data is truncated (no end-of-image marker)")
    floor = jpeg_scan_floor(data)
    if len(data) - scan < floor:
        raise ClientError(f"image: JPEG data is truncated ({len(data) - scan} bytes of scan "
                          f"data where its frame needs at least {floor})")
