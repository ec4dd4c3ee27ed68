"""The ImageMagick engine (through Wand): decode once, make every variant.

``WandEngine.render`` sniffs and pings the source, checks the limits from the
header, decodes once with shrink-on-load (``jpeg:size``) sized for the
largest variant, applies EXIF orientation, and makes the variants largest
first, each resized from the smallest image already made that is at least
twice its size (a cascade), else from the decoded source.  All geometry comes
from ``imagepipe.imaging.geometry``.

Runs in worker threads: plain synchronous code, one Wand image per call.
"""

import time

from wand.color import Color
from wand.api import library
from wand.exceptions import BaseError, ResourceLimitError, WandRuntimeError
from wand.image import ORIENTATION_TYPES, Image
from wand.resource import limits as magick_limits

from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import SourceInfo
from imagepipe.imaging import geometry
from imagepipe.imaging.formats import declared_size, sniff

_ALLOWED_TEXT = "JPEG, PNG, GIF, WebP, AVIF, HEIC"


class _Deadline:
    """The per-call time limit, checked after every step of a call.

    Checked between decode, resizes and encodes rather than from an
    ImageMagick progress monitor: a monitor calls back into Python for every
    row, and each call waits for the interpreter lock, which stalls the
    other worker threads.  One step is bounded by the pixel limits.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def check(self):
        """Raise ``TooLarge`` once the call has run past its limit."""
        if time.monotonic() > self.expires:
            raise TooLarge(f"image: MAGICK_TIME_LIMIT ({self.seconds:g} s) reached")


class WandEngine:
    """Decode, resize, crop, pad, orient, strip and encode with ImageMagick."""

    name = "wand"

    def __init__(self, limits, formats):
        self.limits = limits
        self.formats = frozenset(formats)  # names that this ImageMagick can write

    def inspect(self, data):
        """Sniff and ping ``data``; return its ``SourceInfo`` without decoding pixels."""
        fmt = sniff(data)
        if fmt is None or fmt.name not in self.formats:
            raise ClientError(f"image: not an allowed image type (allowed: {_ALLOWED_TEXT})")
        declared = declared_size(fmt, data)
        if declared:
            self._check_pixels(*declared, 1)
        try:
            with Image.ping(blob=data, format=fmt.coder) as image:
                frames = len(image.sequence)
                width, height = _canvas(image)
                orientation = ORIENTATION_TYPES.index(image.orientation)
        except ResourceLimitError as error:
            raise TooLarge(f"image: ImageMagick resource limit hit: {_text(error)}") from None
        except (BaseError, WandRuntimeError) as error:
            raise ClientError(f"image: cannot read {fmt.coder} header: {_text(error)}") from None
        return SourceInfo(format=fmt, width=width, height=height, frames=frames,
                          orientation=orientation if orientation in range(1, 9) else 0)

    def check_limits(self, info):
        """Refuse a source over ``max_pixels`` (frames summed) or ``max_frames``."""
        if info.frames > self.limits.max_frames:
            raise TooLarge(f"image: {info.frames} frames exceed max_frames "
                           f"({self.limits.max_frames})")
        self._check_pixels(info.width, info.height, info.frames)

    def _check_pixels(self, width, height, frames):
        pixels = width * height * frames
        if pixels > self.limits.max_pixels:
            raise TooLarge(f"image: {width}x{height}"
                           f"{f' x {frames} frames' if frames > 1 else ''} = "
                           f"{pixels} pixels exceed max_pixels ({self.limits.max_pixels})")
        for side, value in (("width", width), ("height", height)):
            limit = magick_limits[side]
            if value > limit:
                raise TooLarge(f"image: {side} {value} exceeds MAGICK_{side.upper()}_LIMIT "
                               f"({limit})")

    def render(self, data, variants, options):
        """Make every variant of ``data``; return their encoded bytes in order.

        A ``verbatim`` variant returns ``data`` itself, once the whole image
        has been decoded without error.
        """
        info = self.inspect(data)
        self.check_limits(info)
        _check_complete(info.format, data)
        upright = geometry.oriented((info.width, info.height), info.orientation)
        outputs = [v.format or info.format for v in variants]
        plans = [geometry.plan(upright, v.box, v.mode) for v in variants]
        for plan, fmt in zip(plans, outputs):
            w, h = plan.output
            frames = info.frames if fmt.name == "gif" else 1
            if w * h * frames > self.limits.max_pixels:
                raise TooLarge(f"size: output {w}x{h} exceeds max_pixels "
                               f"({self.limits.max_pixels})")
        animated = info.frames > 1 and any(fmt.name == "gif" for fmt in outputs)
        hint = max((p.resize for p in plans), key=lambda s: s[0] * s[1])
        deadline = _Deadline(self.limits.time_limit)
        try:
            with self._decode(data, info, hint, animated, deadline) as source:
                results = self._variants(data, info, source, variants, outputs, plans,
                                         options, deadline)
            deadline.check()
            return results
        except ResourceLimitError as error:
            raise TooLarge(f"image: ImageMagick resource limit hit: {_text(error)}") from None
        except (BaseError, WandRuntimeError) as error:
            raise ClientError(f"image: cannot process {info.format.coder} data: "
                              f"{_text(error)}") from None

    def _decode(self, data, info, hint, animated, deadline):
        image = Image()
        try:
            if info.format.name == "jpg" and hint != (info.width, info.height):
                w, h = geometry.oriented(hint, info.orientation)
                image.options["jpeg:size"] = f"{w}x{h}"
            image.read(blob=data, format=info.format.coder)
            if len(image.sequence) > 1:
                image.coalesce()
                if not animated:
                    first = Image(image=image.sequence[0])
                    image.close()
                    image = first
            deadline.check()
            if info.orientation not in (0, 1):
                image.auto_orient()
            _reset_pages(image)
            return image
        except BaseException:
            image.close()
            raise

    def _variants(self, data, info, source, variants, outputs, plans, options, deadline):
        order = sorted(range(len(variants)),
                       key=lambda i: plans[i].resize[0] * plans[i].resize[1], reverse=True)
        bases = [source]
        results = [None] * len(variants)
        try:
            for index in order:
                variant, fmt, plan = variants[index], outputs[index], plans[index]
                if variant.verbatim and fmt == info.format:
                    results[index] = data
                    continue
                base = bases[geometry.base_for(plan.resize, [b.size for b in bases])]
                image = base.clone()
                try:
                    if image.size != plan.resize:
                        image.resize(*plan.resize, filter=options.filter)
                        deadline.check()
                        bases.insert(0, image.clone())
                    results[index] = _finish(image, plan, fmt, options)
                    deadline.check()
                finally:
                    image.close()
        finally:
            for base in bases[:-1]:
                base.close()
        return results


def _finish(image, plan, fmt, options):
    """Crop or pad a resized image, then flatten, strip and encode it."""
    if plan.crop:
        box = plan.crop
        image.crop(box.left, box.top, width=box.width, height=box.height)
    elif plan.canvas:
        box = plan.canvas
        transparent = fmt.alpha
        image.background_color = Color("transparent" if transparent else options.background)
        if transparent:
            image.alpha_channel = "set"
        _each_frame(image, lambda: library.MagickExtentImage(
            image.wand, box.width, box.height, -box.left, -box.top))
    _reset_pages(image)
    if not fmt.alpha and image.alpha_channel:
        image.background_color = Color(options.background)
        image.alpha_channel = "remove"
    _strip(image, options.strip)
    if fmt.name == "jpg" and image.colorspace == "cmyk":
        image.transform_colorspace("srgb")
    image.format = fmt.coder
    if fmt.name in ("jpg", "webp", "avif", "heic"):
        image.compression_quality = options.quality
    if fmt.name == "jpg":
        image.options["jpeg:sampling-factor"] = "2x2,1x1,1x1"  # 4:2:0
    if fmt.name == "gif":
        # Palette each frame here, undithered: the GIF encoder's own dithered
        # quantisation costs ImageMagick 6 about 50 ms per frame.
        _each_frame(image, lambda: image.quantize(256, "srgb", 0, False, False))
    if fmt.name != "gif" and len(image.sequence) > 1:
        first = Image(image=image.sequence[0])
        try:
            return _encode(first, fmt, options.progressive)
        finally:
            first.close()
    return _encode(image, fmt, options.progressive)


def _encode(image, fmt, progressive=False):
    # ImageMagick 6 only honours interlacing of JPEG through the PJPEG coder.
    return image.make_blob("PJPEG" if fmt.name == "jpg" and progressive else fmt.coder)


# PNG chunks never written: metadata and timestamps (timestamps would make
# the same call give different bytes).  Colour chunks (iCCP, sRGB, gAMA,
# cHRM) are kept.
_PNG_STRIPPED = "bKGD,caNv,eXIf,iTXt,tEXt,zTXt,date,time"
_PNG_KEPT_METADATA = "date,time"


def _strip(image, strip):
    """Drop metadata but keep the colour profile, so colours stay right."""
    if strip:
        icc = image.profiles["icc"] if "icc" in image.profiles else None
        image.strip()
        if icc:
            image.profiles["icc"] = icc
    image.artifacts["png:exclude-chunk"] = _PNG_STRIPPED if strip else _PNG_KEPT_METADATA


def _each_frame(image, operation):
    count = library.MagickGetNumberImages(image.wand)
    for index in range(count):
        library.MagickSetIteratorIndex(image.wand, index)
        operation()
    library.MagickSetIteratorIndex(image.wand, 0)


def _reset_pages(image):
    _each_frame(image, lambda: library.MagickResetImagePage(image.wand, b"0x0+0+0"))


def _canvas(image):
    """Width and height of the image; for an animation, of its whole canvas."""
    if len(image.sequence) > 1:
        width, height = image.page[:2]
        if width and height:
            return width, height
    return image.width, image.height


def _check_complete(fmt, data):
    """Refuse a JPEG without an end-of-image marker after its scan data.

    ImageMagick decodes a truncated JPEG silently, filling the missing part
    with grey; an image service must say so instead of storing it.
    """
    if data is None or fmt.name != "jpg":
        return
    scan = data.find(b"\xff\xda")
    if scan < 0 or data.rfind(b"\xff\xd9") < scan:
        raise ClientError("image: JPEG data is truncated (no end-of-image marker)")


def _text(error):
    """ImageMagick's message without its source-file location."""
    message = str(error).split(" @ ")[0].strip()
    return message.replace("`buffer.", "`")[:200] or type(error).__name__
