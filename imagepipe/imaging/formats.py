"""Image formats imagepipe accepts, and magic-byte sniffing.

Nothing reaches an engine unless ``sniff`` recognised it here first; the
engine is then told the coder explicitly, so ImageMagick never guesses.
"""

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """One allowed image format."""

    name: str  # our name, also the extension written: jpg, png, gif, webp, avif, heic
    coder: str  # the ImageMagick coder
    mime: str
    alpha: bool  # can hold transparency
    animation: bool  # can hold several frames: an animation written to it stays one
    aliases: tuple = ()


FORMATS = (
    Format("jpg", "JPEG", "image/jpeg", alpha=False, animation=False, aliases=("jpeg", "jpe")),
    Format("png", "PNG", "image/png", alpha=True, animation=False),
    Format("gif", "GIF", "image/gif", alpha=True, animation=True),
    Format("webp", "WEBP", "image/webp", alpha=True, animation=True),
    Format("avif", "AVIF", "image/avif", alpha=True, animation=False),
    Format("heic", "HEIC", "image/heic", alpha=True, animation=False, aliases=("heif",)),
)

_BY_NAME = {alias: f for f in FORMATS for alias in (f.name, *f.aliases)}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def by_name(name):
    """The format called ``name`` (any case, aliases allowed) or None."""
    return _BY_NAME.get(name.lower()) if isinstance(name, str) else None


def sniff(data):
    """The format whose magic bytes start ``data``, or None.

    Only the allow-listed formats are recognised; SVG, MVG, PostScript, PDF,
    MSL and everything else answer None.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return _BY_NAME["jpg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _BY_NAME["png"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _BY_NAME["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _BY_NAME["webp"]
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(len(head), 32), 4)}
        if brands & _AVIF_BRANDS:
            return _BY_NAME["avif"]
        if brands & _HEIC_BRANDS:
            return _BY_NAME["heic"]
    return None


def declared_size(fmt, data):
    """Width and height as the header of ``data`` declares them, or None.

    Read straight from the bytes so that a limit can be checked before any
    decoder runs; None when the format has no simple header (AVIF, HEIC) or
    the header is unreadable.
    """
    try:
        if fmt.name == "png" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if fmt.name == "gif":
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if fmt.name == "jpg":
            return _jpeg_size(data)
        if fmt.name == "webp":
            return _webp_size(data)
    except (IndexError, ValueError):
        return None
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_frame(data):
    """The offset of the JPEG's frame header (its SOF marker), or None before the scan."""
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        if marker in _SOF:
            return offset
        if marker == 0xDA:
            return None
        offset += 2 + int.from_bytes(data[offset + 2:offset + 4], "big")
    return None


def _jpeg_size(data):
    frame = _jpeg_frame(data)
    if frame is None:
        return None
    return (int.from_bytes(data[frame + 7:frame + 9], "big"),
            int.from_bytes(data[frame + 5:frame + 7], "big"))


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 ":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def metadata_bytes(fmt, data, limit):
    """The bytes of metadata in ``data`` once inflated, counted up to just past ``limit``.

    PNG keeps text (``zTXt``, compressed ``iTXt``) and its colour profile
    (``iCCP``) as zlib streams that decoders inflate whole, so a megabyte on
    the wire can hold a gigabyte; they are inflated here, never past
    ``limit + 1`` bytes, before any decoder sees them.  Raw text and EXIF
    chunks count as they are.  Other formats keep their metadata raw, bounded
    by the payload itself: 0.
    """
    if fmt.name != "png":
        return 0
    total, offset = 0, 8
    while offset + 8 <= len(data) and total <= limit:
        length = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind in (b"tEXt", b"eXIf"):
            total += len(body)
        elif kind in (b"zTXt", b"iCCP"):
            total += _inflated(body[body.find(b"\0") + 2:], limit + 1 - total)
        elif kind == b"iTXt":
            keyword_end = body.find(b"\0")
            compressed = body[keyword_end + 1:keyword_end + 2] == b"\1"
            text = body[keyword_end + 3:]
            text = text[text.find(b"\0") + 1:]  # after the language tag
            text = text[text.find(b"\0") + 1:]  # after the translated keyword
            total += _inflated(text, limit + 1 - total) if compressed else len(text)
        elif kind == b"IEND":
            break
    return total


def _inflated(stream, budget):
    """How many bytes the zlib ``stream`` inflates to, counting no further than ``budget``."""
    inflater, total = zlib.decompressobj(), 0
    try:
        while stream and total < budget:
            total += len(inflater.decompress(stream, budget - total))
            stream = inflater.unconsumed_tail
    except zlib.error:
        pass  # a corrupt stream inflates no further
    return total


def declared_frames(fmt, data, limit):
    """The frames of a GIF counted from its blocks, up to just past ``limit``; None otherwise.

    Walks the block structure without decoding a pixel, so that an animation
    with too many frames is refused before a decoder allocates any of them.
    """
    if fmt.name != "gif" or len(data) < 13:
        return None
    offset = 13
    if data[10] & 0x80:  # global colour table
        offset += 3 << ((data[10] & 7) + 1)
    frames = 0
    while offset < len(data) and frames <= limit:
        block = data[offset]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            offset = _after_sub_blocks(data, offset + 2)
        elif block == 0x2C:  # image descriptor, local colour table, LZW size, sub-blocks
            frames += 1
            flags = data[offset + 9] if offset + 9 < len(data) else 0
            offset += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
            offset = _after_sub_blocks(data, offset + 1)
        else:
            break  # not a GIF block: the decoder will say what is wrong
    return frames


def _after_sub_blocks(data, offset):
    """The offset just past a chain of GIF data sub-blocks starting at ``offset``."""
    while offset < len(data) and data[offset]:
        offset += 1 + data[offset]
    return offset + 1


_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive


def jpeg_scan_floor(data):
    """The fewest bytes of scan data that can fill the JPEG frame ``data`` declares.

    Huffman coding spends at least one bit on every 8x8 block of every
    component (the shortest code of a DC difference), in sequential and
    progressive JPEGs alike.  A file with less scan data than this was cut
    short, however it ends.  0 for arithmetic-coded or lossless frames, and
    when the header cannot be read.
    """
    frame = _jpeg_frame(data)
    try:
        if frame is None or data[frame + 1] not in _HUFFMAN_SOF:
            return 0
        height = int.from_bytes(data[frame + 5:frame + 7], "big")
        width = int.from_bytes(data[frame + 7:frame + 9], "big")
        factors = [(data[frame + 11 + 3 * i] >> 4, data[frame + 11 + 3 * i] & 15)
                   for i in range(data[frame + 9])]
    except IndexError:
        return 0
    most_h = max((h for h, _ in factors), default=1) or 1
    most_v = max((v for _, v in factors), default=1) or 1
    blocks = sum(_ceil(_ceil(width * h, most_h), 8) * _ceil(_ceil(height * v, most_v), 8)
                 for h, v in factors)
    return blocks // 8


def _ceil(numerator, denominator):
    return -(-numerator // denominator)
