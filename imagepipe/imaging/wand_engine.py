"""The ImageMagick engine (through Wand): decode once, make every variant.

After the shared checks (``imagepipe.imaging.engine``), ``WandEngine``
decodes once with shrink-on-load (``jpeg:size``) sized for the largest
resize and applies EXIF orientation.  ``render`` then makes the variants
largest first, each resized from the smallest image already made that is at
least twice its size (a cascade), else from the decoded source;
``transform`` cuts, trims, rotates, flips and resizes as its
``geometry.TransformPlan`` says.  Both finish (crop, pad, flatten, strip,
encode) through ``_finish``.  All geometry comes from
``imagepipe.imaging.geometry``; the trim box from the Pillow engine's
``trim_box``, so that both engines trim alike.

Runs in worker threads: plain synchronous code, one Wand image per call.
"""

import contextlib

from wand.color import Color
from wand.api import library
from wand.exceptions import BaseError, ResourceLimitError, WandRuntimeError
from wand.image import ORIENTATION_TYPES, Image
from wand.resource import limits as magick_limits

from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import Rendered, SourceInfo, geometry
from imagepipe.imaging.engine import Engine


class WandEngine(Engine):
    """Decode, resize, crop, pad, orient, strip and encode with ImageMagick."""

    name = "wand"

    def _inspect(self, data, fmt):
        with _failures(fmt, f"read {fmt.coder} header"):
            with Image.ping(blob=data, format=fmt.coder) as image:
                frames = len(image.sequence)
                width, height = _canvas(image)
                orientation = ORIENTATION_TYPES.index(image.orientation)
        return SourceInfo(format=fmt, width=width, height=height, frames=frames,
                          orientation=orientation if orientation in range(1, 9) else 0)

    def check_pixels(self, width, height, frames):
        """Also refuse what ImageMagick's own width and height limits would."""
        super().check_pixels(width, height, frames)
        for side, value in (("width", width), ("height", height)):
            limit = magick_limits[side]
            if value > limit:
                raise TooLarge(f"image: {side} {value} exceeds MAGICK_{side.upper()}_LIMIT "
                               f"({limit})")

    def _render(self, call):
        with _failures(call.info.format):
            with self._decode(call.data, call.info, call.shrink_to, call.animated,
                              call.deadline) as source:
                return self._variants(call, source)

    def _transform(self, call):
        with _failures(call.info.format):
            with self._decode(call.data, call.info, call.shrink_to, call.animated,
                              call.deadline) as image:
                fmt = call.output(bool(image.alpha_channel))
                image, plan = self.steps(call, image, _Steps(fmt))
                call.deadline.check("resize")
                return Rendered(_encoded(image, fmt, call.options), fmt, *plan.output)

    def _decode(self, data, info, shrink_to, animated, deadline):
        """The upright source, coalesced: every frame if ``animated``, else the first.

        A JPEG is decoded no smaller than ``shrink_to`` (upright) when given.
        """
        image = Image()
        try:
            if shrink_to:
                w, h = geometry.oriented(shrink_to, info.orientation)
                image.options["jpeg:size"] = f"{w}x{h}"
            image.read(blob=data, format=info.format.coder)
            if len(image.sequence) > 1:
                image.coalesce()
                if not animated:
                    first = Image(image=image.sequence[0])
                    image.close()
                    image = first
            deadline.check("decode")
            if info.orientation not in (0, 1):
                image.auto_orient()
            _reset_pages(image)
            return image
        except BaseException:
            image.close()
            raise

    def _variants(self, call, source):
        bases = [source]
        results = [None] * len(call.variants)
        try:
            for index in call.order():
                if call.verbatim(index):
                    results[index] = call.data
                    continue
                plan = call.plans[index]
                base = bases[geometry.base_for(plan.resize, [b.size for b in bases])]
                image = base.clone()
                try:
                    if image.size != plan.resize:
                        image.resize(*plan.resize, filter=call.options.filter)
                        call.deadline.check()
                        bases.insert(0, image.clone())
                    fmt = call.outputs[index]
                    results[index] = _finish(image, plan, fmt, call.options, call.canvas(fmt))
                    call.deadline.check()
                finally:
                    image.close()
        finally:
            for base in bases[:-1]:
                base.close()
        return results


@contextlib.contextmanager
def _failures(fmt, doing=None):
    """Report ImageMagick's failures as ``ClientError`` or ``TooLarge``.

    ``doing`` names the step in the message (default: processing ``fmt`` data).
    """
    try:
        yield
    except ResourceLimitError as error:
        raise TooLarge(f"image: ImageMagick resource limit hit: {_text(error)}") from None
    except (BaseError, WandRuntimeError) as error:
        raise ClientError(f"image: cannot {doing or f'process {fmt.coder} data'}: "
                          f"{_text(error)}") from None


def _cut(image, box):
    """Cut every frame to ``box`` (a ``geometry.Box``; None: leave it)."""
    if box is None:
        return
    _each_frame(image, lambda: library.MagickCropImage(image.wand, box.width, box.height,
                                                       box.left, box.top))
    _reset_pages(image)


def _turn(image, rotate, flip):
    """Rotate every frame clockwise by ``rotate`` degrees, then flip it (``h`` or ``v``)."""
    if rotate:
        with Color("transparent") as corners:  # never shows: multiples of 90 degrees
            _each_frame(image, lambda: library.MagickRotateImage(image.wand, corners.resource,
                                                                 rotate))
    if flip:
        mirror = library.MagickFlopImage if flip == "h" else library.MagickFlipImage
        _each_frame(image, lambda: mirror(image.wand))
    if rotate or flip:
        _reset_pages(image)


def _trim_box(image):
    """The box trimming keeps, found on the first frame by the shared rule."""
    from imagepipe.imaging.pillow_engine import trim_box

    with Image(image=image.sequence[0]) as first:
        return trim_box(_as_pillow(first))


class _Steps:
    """The pixels of a transform's steps on one Wand image (changed in place)."""

    def __init__(self, fmt):
        self.format = fmt

    def size(self, image):
        return image.size

    def cut(self, image, box):
        _cut(image, box)
        return image

    def trim_box(self, image):
        return _trim_box(image)

    def turn(self, image, rotate, flip):
        _turn(image, rotate, flip)
        return image

    def resize(self, image, size, filter_name):
        image.resize(*size, filter=filter_name)
        return image

    def place(self, image, plan, canvas):
        _place(image, plan, self.format, canvas)
        return image


def _finish(image, plan, fmt, options, canvas):
    """Crop or pad (on a ``canvas`` colour) a resized image, then flatten, strip and encode it."""
    _place(image, plan, fmt, canvas)
    return _encoded(image, fmt, options)


def _place(image, plan, fmt, canvas):
    """Crop a resized image to ``plan.crop``, or pad it on a ``canvas`` colour to ``plan.canvas``."""
    if plan.crop:
        box = plan.crop
        image.crop(box.left, box.top, width=box.width, height=box.height)
    elif plan.canvas:
        box = plan.canvas
        image.background_color = Color(canvas)
        if fmt.alpha:
            image.alpha_channel = "set"
        _each_frame(image, lambda: library.MagickExtentImage(
            image.wand, box.width, box.height, -box.left, -box.top))
    _reset_pages(image)


def _encoded(image, fmt, options):
    """Flatten (for a format without alpha), strip and encode a finished image."""
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
        # Standard Huffman tables, as the Pillow engine writes: optimised ones
        # save about 2.5 % of the bytes and cost 40 % of the encode.
        image.options["jpeg:optimize-coding"] = "false"
    if fmt.name == "gif":
        # Palette each frame here, undithered: the GIF encoder's own dithered
        # quantisation costs ImageMagick 6 about 50 ms per frame.
        _each_frame(image, lambda: image.quantize(256, "srgb", 0, False, False))
    if fmt.name == "webp" and len(image.sequence) > 1:
        return _animated_webp(image, options)
    if not fmt.animation and len(image.sequence) > 1:
        first = Image(image=image.sequence[0])
        try:
            return _encode(first, fmt, options.progressive)
        finally:
            first.close()
    return _encode(image, fmt, options.progressive)


def _animated_webp(image, options):
    """Hand the rendered frames to the shared animated WebP writer (see there why)."""
    from imagepipe.imaging.pillow_engine import animated_webp

    frames, durations = [], []
    for index in range(len(image.sequence)):
        with Image(image=image.sequence[index]) as frame:
            frames.append(_as_pillow(frame))
            durations.append(round(frame.delay * 1000 / (frame.ticks_per_second or 100)))
    return animated_webp(frames, durations, image.loop, options.quality)  # loop: plays


def _as_pillow(frame):
    """A single-frame Wand image as an 8-bit Pillow image (RGB, or RGBA with alpha)."""
    from PIL import Image as Picture

    frame.depth = 8
    mode = "RGBA" if frame.alpha_channel else "RGB"
    return Picture.frombytes(mode, frame.size, frame.make_blob(mode))


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


def _text(error):
    """ImageMagick's message without its source-file location."""
    message = str(error).split(" @ ")[0].strip()
    return message.replace("`buffer.", "`")[:200] or type(error).__name__
