"""The Pillow engine: the same semantics as ``wand_engine``, faster.

After the shared checks (``imagepipe.imaging.engine``), ``PillowEngine``
opens the bytes with only the sniffed format allowed, decodes once with
``draft`` (JPEG shrink-on-load, DCT scaling) sized for the largest resize,
and applies EXIF orientation.  ``render`` then makes the variants largest
first, each resized from the smallest image already made that is at least
twice its size (the cascade of ``geometry.base_for``); ``transform`` cuts,
trims, rotates, flips and resizes as its ``geometry.TransformPlan`` says.
Both finish (crop, pad, flatten, encode) through ``_finish``.  Resizes use ``reducing_gap``: a fast
integer ``reduce`` down to three times the target, then the filter proper,
which Pillow documents as indistinguishable from a full resample.

An image is handled as a list of full-canvas frames (one unless an
animation is kept for GIF), all in RGB, RGBA or L.  Pillow's own decompression
bomb check is set from ``max_pixels``; the decoded sizes are checked against
the limits again, so that the band where Pillow only warns is refused too.

Runs in worker threads: plain synchronous code; Pillow releases the
interpreter lock while it decodes, resizes and encodes.
"""

import contextlib
import functools
import io
import os
import re
import struct

from PIL import GifImagePlugin, Image, ImageChops, ImageCms, ImageColor, UnidentifiedImageError

from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import Rendered, SourceInfo, geometry
from imagepipe.imaging.engine import Engine
from imagepipe.imaging.formats import FORMATS

# ImageMagick filter names (imagepipe.imaging.vocabulary.FILTERS) to the nearest Pillow
# resampler; anything else (lanczos2, sinc, kaiser, ...) is Lanczos.
_FILTERS = {
    "point": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "triangle": Image.Resampling.BILINEAR,
    "hermite": Image.Resampling.HAMMING,
    "hanning": Image.Resampling.HAMMING,
    "hamming": Image.Resampling.HAMMING,
    "catrom": Image.Resampling.BICUBIC,
    "cubic": Image.Resampling.BICUBIC,
    "mitchell": Image.Resampling.BICUBIC,
    "robidoux": Image.Resampling.BICUBIC,
    "spline": Image.Resampling.BICUBIC,
}

# Reduce by whole factors down to this multiple of the target, then resample.
_REDUCING_GAP = 3.0

# Pillow's names of our formats, where they differ from ImageMagick's coder.
_PILLOW_NAMES = {"heic": "HEIF"}

# Orientation -> the transpose that makes the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Clockwise rotation and flip of a transform -> the transpose doing it.
_TURNS = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
          270: Image.Transpose.ROTATE_90}
_FLIPS = {"h": Image.Transpose.FLIP_LEFT_RIGHT, "v": Image.Transpose.FLIP_TOP_BOTTOM}

# How far a pixel's channels may stray from the border colour and still be
# trimmed with it: 10 % of the range.
TRIM_FUZZ = 0.10

_ORIENTATION = 0x0112
_RGBA = re.compile(r"^rgba\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*([\d.]+)\s*\)$")

# Pillow's decoding failures: a corrupt or truncated file, an unsupported
# variant of a format, a decompression bomb.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
                  struct.error)


class PillowEngine(Engine):
    """Decode, resize, crop, pad, orient, strip and encode with Pillow."""

    name = "pillow"

    @property
    def limits(self):
        """The ``ImageLimits`` in force; setting them also sets Pillow's bomb check."""
        return self._limits

    @limits.setter
    def limits(self, limits):
        # Pillow's check is process-wide: one engine per process, whose
        # limits a reload replaces.
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
        self._limits = limits

    def _inspect(self, data, fmt):
        with self._failures(fmt, f"read {fmt.coder} header"):
            with _open(data, fmt) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
                orientation = image.getexif().get(_ORIENTATION, 0)
        return SourceInfo(format=fmt, width=width, height=height, frames=frames,
                          orientation=orientation if orientation in range(1, 9) else 0)

    def _render(self, call):
        with self._failures(call.info.format):
            complete = any(call.verbatim(i) for i in range(len(call.variants)))
            source = self._decode(call.data, call.info, call.shrink_to, call.animated, complete)
            call.deadline.check()
            return self._variants(call, source)

    def _transform(self, call):
        with self._failures(call.info.format):
            picture = self._decode(call.data, call.info, call.shrink_to, call.animated)
            call.deadline.check("decode")
            fmt = call.output(picture.alpha)
            count = len(picture.frames) if fmt.animation else 1
            picture, plan = self.steps(call, picture, _Steps(fmt, count))
            call.deadline.check("resize")
            return Rendered(_encode(_flat(picture, fmt, call.options), fmt, call.options), fmt,
                            *plan.output)

    @contextlib.contextmanager
    def _failures(self, fmt, doing=None):
        """Report Pillow's failures as ``ClientError`` or ``TooLarge``.

        ``doing`` names the step in the message (default: processing ``fmt`` data).
        """
        doing = doing or f"process {fmt.coder} data"
        try:
            yield
        except Image.DecompressionBombError:
            raise self._bomb() from None
        except UnidentifiedImageError:
            raise ClientError(f"image: cannot {doing}: not a valid {fmt.coder} file") from None
        except _DECODE_ERRORS as error:
            raise ClientError(f"image: cannot {doing}: {_text(error)}") from None

    def _bomb(self):
        return TooLarge(f"image: larger than max_pixels ({self.limits.max_pixels}) "
                        f"once decoded")

    def _decode(self, data, info, shrink_to, animated, complete=False):
        """The upright source as a ``_Picture``: every frame if ``animated``, else the first.

        A JPEG is decoded no smaller than ``shrink_to`` (upright) when given;
        ``complete`` decodes every frame even when only the first is kept.
        """
        with _open(data, info.format) as image:
            if shrink_to:
                image.draft("RGB", geometry.oriented(shrink_to, info.orientation))
            icc = image.info.get("icc_profile") or None
            exif = image.getexif()
            loop = image.info.get("loop")
            count = info.frames if animated else 1
            frames, durations = [], []
            for index in range(count):
                image.seek(index)
                image.load()
                if count > 1:
                    frames.append(image.convert("RGBA"))
                elif info.frames > 1:
                    frames.append(image.copy())  # seeking on would change it
                else:
                    frames.append(image)  # loaded: its pixels outlive the file
                durations.append(image.info.get("duration", 0))
            if complete:
                _load_every_frame(image, info.frames)
        self.check_pixels(*frames[0].size, len(frames))
        frames, icc = _normalised(frames, icc)
        transpose = _UPRIGHT.get(info.orientation)
        if transpose is not None:
            frames = [frame.transpose(transpose) for frame in frames]
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return _Picture(frames, durations, loop, icc, exif.tobytes() if exif else None)

    def _variants(self, call, source):
        bases = [source]
        results = [None] * len(call.variants)
        for index in call.order():
            if call.verbatim(index):
                results[index] = call.data
                continue
            plan = call.plans[index]
            fmt = call.outputs[index]
            count = len(source.frames) if fmt.animation else 1
            # A base made for a single-frame output cannot serve an animation.
            usable = [base for base in bases if len(base.frames) >= count]
            picture = usable[geometry.base_for(plan.resize, [b.size for b in usable])]
            if picture.size != plan.resize:
                picture = picture.resized(plan.resize, count, call.options.filter)
                call.deadline.check()
                bases.insert(0, picture)
            results[index] = _finish(picture, count, plan, fmt, call.options,
                                     call.canvas(fmt))
            call.deadline.check()
        return results


class _Picture:
    """Full-canvas frames of one size and mode, and what encoders need of the source."""

    def __init__(self, frames, durations, loop, icc, exif):
        self.frames = frames
        self.durations = durations
        self.loop = loop
        self.icc = icc
        self.exif = exif  # bytes with orientation reset to 1, or None

    @property
    def size(self):
        """Width and height of every frame."""
        return self.frames[0].size

    @property
    def alpha(self):
        """True when the frames have an alpha channel."""
        return self.frames[0].mode == "RGBA"

    def cut(self, box):
        """Every frame cut to ``box`` (a ``geometry.Box``; None: unchanged)."""
        if box is None:
            return self
        return self.with_frames([_cropped(frame, box) for frame in self.frames])

    def turned(self, rotate, flip):
        """Every frame rotated clockwise by ``rotate`` degrees, then flipped (``h`` or ``v``)."""
        frames = self.frames
        for transpose in (_TURNS.get(rotate), _FLIPS.get(flip)):
            if transpose is not None:
                frames = [frame.transpose(transpose) for frame in frames]
        return self if frames is self.frames else self.with_frames(frames)

    def resized(self, size, count, filter_name):
        """The first ``count`` frames resized to ``size``."""
        resample = _FILTERS.get(filter_name, Image.Resampling.LANCZOS)
        frames = [frame.resize(size, resample, reducing_gap=_REDUCING_GAP)
                  for frame in self.frames[:count]]
        return self.with_frames(frames)

    def with_frames(self, frames):
        """The same source facts with other ``frames``."""
        return _Picture(frames, self.durations, self.loop, self.icc, self.exif)


class _Steps:
    """The pixels of a transform's steps on a ``_Picture`` (each step a new one)."""

    def __init__(self, fmt, count):
        self.format, self.count = fmt, count

    def size(self, picture):
        return picture.size

    def cut(self, picture, box):
        return picture.cut(box)

    def trim_box(self, picture):
        return trim_box(picture.frames[0])

    def turn(self, picture, rotate, flip):
        return picture.turned(rotate, flip)

    def resize(self, picture, size, filter_name):
        return picture.resized(size, self.count, filter_name)

    def place(self, picture, plan, canvas):
        return _placed(picture, self.count, plan, self.format, canvas)


def _finish(picture, count, plan, fmt, options, canvas):
    """Crop or pad (on a ``canvas`` colour) a resized picture, then flatten and encode it."""
    return _encode(_flat(_placed(picture, count, plan, fmt, canvas), fmt, options), fmt, options)


def _placed(picture, count, plan, fmt, canvas):
    """The first ``count`` frames cropped, or laid on a ``canvas`` colour by ``plan``.

    A transparent pixel laid on an opaque canvas shows the canvas, as
    ImageMagick's extent does; flattening what is left waits for the end.
    """
    frames = picture.frames[:count]
    if plan.crop:
        frames = [_cropped(frame, plan.crop) for frame in frames]
    if plan.canvas:
        fill = _colour(canvas) if fmt.alpha else _colour(canvas)[:3]
        frames = [_padded(frame, plan.canvas, fill) for frame in frames]
    return picture.with_frames(frames)


def _flat(picture, fmt, options):
    """``picture`` laid on the background when ``fmt`` has no alpha."""
    if fmt.alpha:
        return picture
    return picture.with_frames([_flattened(frame, options.background)
                                for frame in picture.frames])


def _cropped(frame, box):
    return frame.crop((box.left, box.top, box.left + box.width, box.top + box.height))


def trim_box(frame):
    """The ``geometry.Box`` left once the uniform border of ``frame`` is trimmed, or None.

    The border is the colour of the top-left pixel, give or take
    ``TRIM_FUZZ`` on every channel; when that pixel is fully transparent,
    only alpha counts (hidden colours do not).  None when nothing differs
    from it: a uniform picture is kept whole.  Both engines trim with this
    one rule (Wand hands its first frame over), so they agree.
    """
    corner = frame.getpixel((0, 0))
    bands = ImageChops.difference(frame, Image.new(frame.mode, frame.size, corner)).split()
    if frame.mode == "RGBA" and corner[3] == 0:
        bands = bands[3:]
    differs = functools.reduce(ImageChops.lighter, bands)
    limit = round(TRIM_FUZZ * 255)
    found = differs.point([0] * (limit + 1) + [255] * (255 - limit)).getbbox()
    if found is None:
        return None
    left, top, right, bottom = found
    return geometry.Box(left, top, right - left, bottom - top)


def _flattened(frame, background):
    """``frame`` without alpha, laid on ``background`` (never on black)."""
    if frame.mode != "RGBA":
        return frame
    flat = Image.new("RGB", frame.size, _colour(background)[:3])
    flat.paste(frame, mask=frame.getchannel("A"))
    return flat


def _padded(frame, box, fill):
    """``frame`` composited onto a ``fill`` canvas (RGBA: one that may show alpha)."""
    if len(fill) == 4 or frame.mode == "RGBA":
        canvas = Image.new("RGBA", (box.width, box.height), fill if len(fill) == 4
                           else (*fill, 255))
        canvas.alpha_composite(frame.convert("RGBA"), (box.left, box.top))
        return canvas if len(fill) == 4 else canvas.convert("RGB")
    mode = "L" if frame.mode == "L" and _grey(fill) else "RGB"
    canvas = Image.new(mode, (box.width, box.height), fill[0] if mode == "L" else fill)
    canvas.paste(frame.convert(mode), (box.left, box.top))
    return canvas


def _grey(rgb):
    return rgb[0] == rgb[1] == rgb[2]


def _colour(text):
    """An RGBA tuple from our colour syntax (``imagepipe.imaging.vocabulary``), alpha 0..1 allowed."""
    if text in ("transparent", "none"):
        return 0, 0, 0, 0
    match = _RGBA.match(text)
    if match:
        red, green, blue, alpha = match.groups()
        return (int(red), int(green), int(blue), round(min(float(alpha), 1.0) * 255))
    return ImageColor.getcolor(text, "RGBA")


def _encode(picture, fmt, options):
    """Encoded bytes: metadata only when ``strip`` is off, the colour profile always."""
    if fmt.name == "gif":
        return _gif(picture)
    image = picture.frames[0]
    params = {}
    if picture.icc:
        params["icc_profile"] = picture.icc
    if picture.exif and not options.strip:
        params["exif"] = picture.exif
    if fmt.name == "jpg":
        params.update(quality=options.quality, progressive=options.progressive,
                      subsampling=2, optimize=False)  # 2: 4:2:0
    elif fmt.name in ("webp", "avif", "heic"):
        params.update(quality=options.quality)
    if fmt.name == "webp" and len(picture.frames) > 1:
        return animated_webp(picture.frames, picture.durations, _plays(picture.loop),
                             options.quality)
    return _saved(image, _PILLOW_NAMES.get(fmt.name, fmt.coder), params)


def _saved(image, name, params):
    """``image`` encoded as ``name``, written to an in-memory file descriptor.

    Pillow encodes to a real file descriptor with the interpreter lock
    released, but to a Python object (``BytesIO``) with it held; an encode
    holding the lock stalls the other workers and the reactor.
    """
    fd = os.memfd_create("imagepipe-encode", os.MFD_CLOEXEC)
    with open(fd, "w+b", buffering=0) as out:
        image.save(out, name, **params)
        return os.pread(fd, out.tell(), 0)


def animated_webp(frames, durations, plays, quality):
    """An animated WebP of full-canvas ``frames``, their durations (ms), played ``plays`` times.

    Both engines write animated WebP here: ImageMagick 6's WebP writer moves
    every frame's delay onto the frame before.  libwebp merges identical
    consecutive frames (their durations add up).  ``plays`` 0 is forever.
    """
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:],
                   duration=list(durations), loop=plays, quality=quality)
    return out.getvalue()


def _plays(loop):
    """How many times a GIF plays: no NETSCAPE loop once, loop N is N repeats, 0 forever."""
    if loop is None:
        return 1
    return 0 if loop == 0 else loop + 1


def _gif(picture):
    """A GIF keeping every frame, its duration and the loop count.

    Written frame by frame with Pillow's GIF primitives because its
    ``save_all`` merges identical consecutive frames, which would change
    the frame count.  Frames are whole canvases, so each replaces the last
    (disposal 2 when any is transparent: nothing shows through).
    """
    frames = [_paletted(frame) for frame in picture.frames]
    disposal = 2 if any(t is not None for _, t in frames) else 0
    info = {"loop": picture.loop} if picture.loop is not None and len(frames) > 1 else {}
    first, transparency = frames[0]
    if transparency is not None:
        info["transparency"] = transparency
    header, _ = GifImagePlugin.getheader(first, None, dict(info, duration=1))
    chunks = list(header)
    for index, (frame, transparency) in enumerate(frames):
        params = {"duration": picture.durations[index] if len(frames) > 1 else 0,
                  "disposal": disposal if len(frames) > 1 else 0,
                  "include_color_table": index > 0}
        if transparency is not None:
            params["transparency"] = transparency
        chunks.extend(GifImagePlugin.getdata(frame, (0, 0), **params))
    chunks.append(b";")
    return b"".join(chunks)


def _paletted(frame):
    """(P image, transparent index or None): 256 colours, undithered."""
    rgb = frame.convert("RGB")
    clear = None
    if frame.mode == "RGBA":
        clear = frame.getchannel("A").point([255] * 128 + [0] * 128, "1")
        if clear.getbbox() is None:
            clear = None
    paletted = rgb.quantize(255 if clear else 256, dither=Image.Dither.NONE)
    palette = paletted.getpalette()
    paletted.putpalette(palette + [0] * (768 - len(palette)))
    if clear is None:
        return paletted, None
    paletted.paste(255, mask=clear)
    return paletted, 255


def _normalised(frames, icc):
    """Frames in RGB, RGBA or L, without info; the profile that still applies."""
    image = frames[0]
    if image.mode == "CMYK":
        if icc:
            # The CMYK profile converts the pixels and no longer describes them.
            srgb = ImageCms.createProfile("sRGB")
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            frames = [ImageCms.profileToProfile(f, source, srgb, outputMode="RGB")
                      for f in frames]
            icc = None
        else:
            frames = [f.convert("RGB") for f in frames]
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        frames = [f.convert("I").point(lambda v: v * (1 / 257)).convert("L") for f in frames]
    elif image.mode == "1":
        frames = [f.convert("L") for f in frames]
    elif image.mode not in ("RGB", "RGBA", "L"):
        frames = [f.convert("RGBA" if f.has_transparency_data else "RGB") for f in frames]
    for frame in frames:
        frame.info = {}
    return frames, icc


def _load_every_frame(image, count):
    """Decode every frame: verbatim bytes must be proven to decode completely."""
    for index in range(count):
        image.seek(index)
        image.load()


def _open(data, fmt):
    """Open lazily, with only the sniffed format allowed: Pillow never guesses."""
    return Image.open(io.BytesIO(data), formats=[_PILLOW_NAMES.get(fmt.name, fmt.coder)])


def available_formats():
    """Names of our formats this Pillow can write and read back (a tiny probe each)."""
    Image.init()
    names = []
    for fmt in FORMATS:
        pillow = _PILLOW_NAMES.get(fmt.name, fmt.coder)
        if pillow not in Image.SAVE or pillow not in Image.OPEN:
            continue
        try:
            out = io.BytesIO()
            Image.new("RGB", (8, 8), (255, 0, 0)).save(out, pillow)
            with Image.open(io.BytesIO(out.getvalue()), formats=[pillow]) as back:
                back.load()
                if back.size == (8, 8):
                    names.append(fmt.name)
        except Exception:  # noqa: BLE001 - a codec that fails is simply not offered
            continue
    return names


def _text(error):
    return (str(error).strip() or type(error).__name__)[:200]
