"""What only the Pillow engine has: its own defences, its formats, its setting."""

import struct
import zlib

import pytest
from PIL import Image

from support.decoding import opened
from support.samples import photo
from support.server import b64
from imagepipe.errors import TooLarge
from imagepipe.imaging import EncodeOptions, ImageLimits, VariantSpec
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.geometry import Mode
from imagepipe.imaging.pillow_engine import PillowEngine, available_formats


@pytest.fixture
def pillow():
    """A Pillow engine with the suite's limits; Pillow's process-wide limit restored after."""
    before = Image.MAX_IMAGE_PIXELS
    yield PillowEngine(ImageLimits(max_pixels=50_000_000, max_frames=500), available_formats())
    Image.MAX_IMAGE_PIXELS = before


def png_declaring(width, height):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_max_image_pixels_is_set_from_the_limits(pillow):
    assert Image.MAX_IMAGE_PIXELS == 50_000_000
    pillow.limits = ImageLimits(max_pixels=1_000_000)  # as a reload does
    assert Image.MAX_IMAGE_PIXELS == 1_000_000


def test_a_decompression_bomb_is_refused_by_pillow_itself(pillow):
    # Past the shared header check, straight to Pillow's own: 400 M pixels
    # declared is over twice MAX_IMAGE_PIXELS, where Pillow raises.
    with pytest.raises(TooLarge, match="max_pixels"):
        pillow._inspect(png_declaring(20000, 20000), by_name("png"))


def test_a_decompression_bomb_is_refused_through_render(pillow):
    with pytest.raises(TooLarge, match="max_pixels"):
        pillow.render(png_declaring(20000, 20000), [VariantSpec((10, 10), Mode.FIT,
                                                                by_name("png"))],
                      EncodeOptions())


def test_available_formats_are_the_ones_this_pillow_writes_and_reads():
    # Pillow 13 in the test environment has WebP and AVIF, and no HEIF plugin.
    assert available_formats() == ["jpg", "png", "gif", "webp", "avif"]


def test_filters_without_a_pillow_equivalent_are_lanczos(pillow):
    data = photo()
    spec = [VariantSpec((250, 250), Mode.FIT, by_name("png"))]
    assert (pillow.render(data, spec, EncodeOptions(filter="kaiser"))
            == pillow.render(data, spec, EncodeOptions(filter="lanczos")))


def test_a_server_with_the_pillow_engine_stores_variants(make_server):
    node = make_server(images__engine="pillow").start()
    sizes = {"": [1024, 1024], "_medium": [250, 250], "_thumb": [50, 50]}
    assert node.proxy().store_image(b64(photo()),
                                    "birds/kleiber.jpg", "", sizes, 0,
                                    {"": 0, "_medium": 0, "_thumb": 1}) == "OK"
    found = {name: opened((node.root / "birds" / name).read_bytes())
             for name in ("kleiber.jpg", "kleiber_medium.jpg", "kleiber_thumb.jpg")}
    assert {name: (image.format, image.size) for name, image in found.items()} == {
        "kleiber.jpg": ("JPEG", (1024, 576)),
        "kleiber_medium.jpg": ("JPEG", (250, 141)),
        "kleiber_thumb.jpg": ("JPEG", (50, 50)),
    }
    assert "engine pillow" in node.log()
