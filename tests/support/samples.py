"""The pictures the tests use: one small real photo, and what is made from it.

``tests/data/`` holds the only image files the suite reads (their sources
and licences are in ``tests/data/SOURCES.txt``).  Large photographs are made
here from the shipped one, at the sizes and encodings the tests need; small
gradients (``picture``), alpha PNGs and animations are drawn.  Everything is
deterministic and made once per test process.
"""

import functools
import io
import random
import zlib
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTO = "seeding-1600.jpg"  # 1600x900, CC0


def sample(name):
    """Bytes of a file shipped in ``tests/data``."""
    return (DATA / name).read_bytes()


def picture(width, height, mode="RGB", fmt="JPEG", colour=(200, 30, 30), **save):
    """A generated image with a gradient, encoded by Pillow."""
    image = Image.new(mode, (width, height), colour if mode != "RGBA" else colour + (255,))
    pixels = image.load()
    for x in range(0, width, max(1, width // 64)):
        for y in range(height):
            pixels[x, y] = (x * 255 // width, y * 255 // height, 90) + (
                (255,) if mode == "RGBA" else ())
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


@functools.cache
def photo(width=6028, height=3391, quality=92, progressive=False, subsampling="4:2:2"):
    """A camera-sized JPEG photograph: the shipped photo scaled to ``width`` x ``height``.

    Film grain (the same every run) keeps it as costly to decode, encode and
    compress as a real photograph of that size, which an enlarged picture
    alone is not.  The default is the size of a 20-megapixel 16:9 photo.
    """
    with Image.open(DATA / PHOTO) as small:
        picture = small.convert("RGB").resize((width, height), Image.BICUBIC)
    # Uniform grain of +-7 levels from a seeded generator: the same bytes every run.
    tile = Image.frombytes("L", (1024, 1024), random.Random(1).randbytes(1024 * 1024))
    tile = tile.point(lambda value: 128 + (value - 128) * 7 // 128)
    grain = Image.new("L", picture.size)
    for x in range(0, width, tile.width):
        for y in range(0, height, tile.height):
            grain.paste(tile, (x, y))
    picture = ImageChops.add(picture, Image.merge("RGB", (
        grain, grain.transpose(Image.ROTATE_180), grain.transpose(Image.FLIP_LEFT_RIGHT))),
        1, -128)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, progressive=progressive,
                 subsampling=subsampling)
    return out.getvalue()


@functools.cache
def logo_png(width=1689, height=1800):
    """An RGBA logo: transparent corners, a soft-edged ring of partial alpha, an opaque core.

    Its colours are grainy, so the PNG is large (hundreds of kilobytes), like
    a real logo exported from a photo-editing program.
    """
    colours = Image.open(io.BytesIO(photo(width, height, quality=90)))
    alpha = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(alpha)
    steps = 64
    for step in range(steps):  # from the faint outer ring to the opaque centre
        inset = step * min(width, height) // (3 * steps)
        draw.ellipse((inset, inset, width - 1 - inset, height - 1 - inset),
                     fill=255 * (step + 1) // steps)
    colours.putalpha(alpha)
    out = io.BytesIO()
    colours.save(out, "PNG")
    return out.getvalue()


@functools.cache
def bordered_png(width=1140, height=1244, border=120):
    """An RGBA picture on a transparent border: a shape whose edges fade out."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for step in range(16):  # soft edge: sixteen rings of rising opacity
        inset = border + step * 3
        draw.rounded_rectangle((inset, inset, width - 1 - inset, height - 1 - inset),
                               radius=80, fill=(40, 120, 200, 16 * (step + 1) - 1))
    draw.ellipse((width // 3, height // 3, 2 * width // 3, 2 * height // 3),
                 fill=(230, 200, 30, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@functools.cache
def animated_gif(frames=31, width=320, height=240, duration=70):
    """A looping GIF whose every frame differs: a square crossing a striped scene."""
    scene = Image.new("RGB", (width, height), (240, 240, 230))
    draw = ImageDraw.Draw(scene)
    for x in range(0, width, 16):
        draw.rectangle((x, 0, x + 7, height), fill=(90, 140, 200))
    pictures = []
    side = max(8, min(width, height) // 4)
    for index in range(frames):
        frame = scene.copy()
        left = index * (width - side) // max(1, frames - 1)
        ImageDraw.Draw(frame).rectangle((left, height // 3, left + side, height // 3 + side),
                                        fill=(200, 40, 40))
        pictures.append(frame.quantize(64, dither=Image.Dither.NONE))
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], loop=0,
                     duration=duration, optimize=False)
    return out.getvalue()


# Hostile pictures: small on the wire, costly to whoever decodes them naively.

def _png_chunk(kind, body):
    return (len(body).to_bytes(4, "big") + kind + body
            + zlib.crc32(kind + body).to_bytes(4, "big"))


def _zeros_deflated(size):
    """``size`` zero bytes, zlib-compressed (about 1/1000 of the size)."""
    deflater, block = zlib.compressobj(9), bytes(1 << 20)
    parts = [deflater.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + deflater.flush()


@functools.cache
def png_bomb(kind, inflated=256 << 20):
    """A 1x1 PNG with one ``zTXt``, ``iTXt`` or ``iCCP`` chunk inflating to ``inflated`` bytes."""
    plain = picture_png(1, 1)
    stream = _zeros_deflated(inflated)
    body = {b"zTXt": b"Comment\0\0" + stream,
            b"iTXt": b"Comment\0\1\0\0\0" + stream,
            b"iCCP": b"icc\0\0" + stream}[kind]
    return plain[:33] + _png_chunk(kind, body) + plain[33:]  # after the IHDR chunk


def picture_png(width, height):
    """A plain RGB PNG."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def jpeg_declaring(width, height):
    """A 16x16 JPEG whose frame header is patched to declare ``width`` x ``height``.

    Its few hundred bytes of scan data cannot fill such a frame: a decoder
    that trusts the header pads the rest.
    """
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 120, 200)).save(out, "JPEG", quality=90)
    data = bytearray(out.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


@functools.cache
def many_frames_gif(frames):
    """A 4x4 GIF of ``frames`` frames, each differing from the one before."""
    pictures = [Image.new("P", (4, 4), index % 2) for index in range(frames)]
    for picture in pictures:
        picture.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=20,
                     loop=0, optimize=False)
    return out.getvalue()
