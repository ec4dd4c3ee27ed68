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
    animation: bool  # can hold several frames (we keep them for GIF only)
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
