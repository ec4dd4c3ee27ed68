"""Image formats imagepipe accepts, and magic-byte sniffing.

Nothing reaches an engine unless ``sniff`` recognised it here first; the
engine is then told the coder explicitly, so ImageMagick never guesses.
"""

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


def _jpeg_size(data):
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        length = int.from_bytes(data[offset + 2:offset + 4], "big")
        if marker in _SOF:
            height = int.from_bytes(data[offset + 5:offset + 7], "big")
            width = int.from_bytes(data[offset + 7:offset + 9], "big")
            return width, height
        if marker == 0xDA:
            return None
        offset += 2 + length
    return None


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
