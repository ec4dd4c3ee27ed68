"""Imaging: pure, synchronous bytes-in/bytes-out work, no Twisted here.

The typed values exchanged with engines live in this module; ``formats``
sniffs and names formats, ``geometry`` computes every size and offset,
``magick`` prepares ImageMagick, and ``wand_engine`` and ``pillow_engine``
do the pixel work.
"""

from dataclasses import dataclass, field

from imagepipe.imaging.formats import Format
from imagepipe.imaging.geometry import Mode


@dataclass(frozen=True)
class VariantSpec:
    """One output of a store call: the box to meet, how, and the format."""

    box: tuple | None  # (width, height), or None to keep the source size
    mode: Mode
    format: Format | None  # None: the source's own format
    verbatim: bool = False  # store the verified source bytes unchanged


@dataclass(frozen=True)
class EncodeOptions:
    """Encoder settings shared by every variant of a call."""

    quality: int = 85
    progressive: bool = False
    strip: bool = True
    background: str = "white"
    filter: str = "lanczos"


@dataclass(frozen=True)
class ImageLimits:
    """Limits checked before and during decoding."""

    max_pixels: int = 50_000_000  # of the source, frames summed
    max_frames: int = 500
    time_limit: float = 60.0
    max_metadata_bytes: int = 4 << 20  # inflated text and colour profile of a source
    max_result_side: int = 8192  # of each output frame
    max_result_pixels: int = 25_000_000


@dataclass(frozen=True)
class SourceInfo:
    """What the header of an image says about it."""

    format: Format
    width: int  # as stored, before EXIF orientation
    height: int
    frames: int
    orientation: int  # EXIF orientation 1..8 (0 when absent)


@dataclass(frozen=True)
class Rendered:
    """One encoded picture made by ``Engine.transform``, and what it is."""

    data: bytes
    format: Format
    width: int
    height: int
    spans: dict = field(default_factory=dict, compare=False)  # step -> seconds (/metrics)
