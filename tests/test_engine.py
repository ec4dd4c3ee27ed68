"""Image semantics of the engines, checked with Pillow as the independent decoder.

Every test runs against each engine (the ``engine`` fixture is parametrized
over Wand and Pillow); ``test_engines_agree_on_a_real_photo`` compares them.
"""

import io
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat, JpegImagePlugin

from support.decoding import durations, opened
from support.samples import PHOTO, animated_gif, logo_png, photo, picture, sample
from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import EncodeOptions, VariantSpec
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.geometry import Mode

JPG, PNG, GIF, WEBP = (by_name(n) for n in ("jpg", "png", "gif", "webp"))
OPTIONS = EncodeOptions()


def render_one(engine, data, box, mode=Mode.FIT, fmt=JPG, options=OPTIONS):
    (out,) = engine.render(data, [VariantSpec(box, mode, fmt)], options)
    return opened(out), out


def two_colour_jpeg(orientation=None):
    """60x40: left half red, right half blue; optionally with an EXIF orientation."""
    image = Image.new("RGB", (60, 40), (255, 0, 0))
    image.paste((0, 0, 255), (30, 0, 60, 40))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"  # Make
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes(),
               icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    return out.getvalue()


def three_frame_gif():
    """A 120x80 GIF: red, green, blue for 100, 200 and 300 ms, loop 3."""
    frames = [Image.new("RGB", (120, 80), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=[100, 200, 300],
                   loop=3)
    return out.getvalue()


def close_to(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def test_fit_crop_and_pad_sizes_on_a_camera_sized_photo(engine):
    data = photo()
    specs = [VariantSpec((1024, 1024), Mode.FIT, JPG), VariantSpec((250, 250), Mode.FIT, JPG),
             VariantSpec((50, 50), Mode.CROP, JPG), VariantSpec((300, 300), Mode.PAD, PNG)]
    sizes = [opened(out).size for out in engine.render(data, specs, OPTIONS)]
    assert sizes == [(1024, 576), (250, 141), (50, 50), (300, 300)]


def test_cascade_matches_a_direct_resize(engine):
    data = photo(4272, 2848, quality=85, progressive=True)
    both = engine.render(data, [VariantSpec((1024, 1024), Mode.FIT, PNG),
                                VariantSpec((250, 250), Mode.FIT, PNG)], OPTIONS)
    (alone,) = engine.render(data, [VariantSpec((250, 250), Mode.FIT, PNG)], OPTIONS)
    difference = ImageChops.difference(opened(both[1]).convert("RGB"),
                                       opened(alone).convert("RGB"))
    assert max(ImageStat.Stat(difference).mean) < 1.5


def test_pad_on_png_leaves_a_transparent_border(engine):
    image, _ = render_one(engine, picture(400, 200), (100, 100), Mode.PAD, PNG)
    assert image.size == (100, 100) and image.mode == "RGBA"
    assert image.getpixel((50, 2))[3] == 0 and image.getpixel((50, 50))[3] == 255


def test_pad_on_jpeg_uses_white_never_black(engine):
    image, _ = render_one(engine, picture(400, 200), (100, 100), Mode.PAD, JPG)
    assert close_to(image.getpixel((50, 2)), (255, 255, 255), 8)


def test_pad_background_option(engine):
    options = EncodeOptions(background="#00ff00")
    image, _ = render_one(engine, picture(400, 200), (100, 100), Mode.PAD, JPG, options)
    assert close_to(image.getpixel((50, 2)), (0, 255, 0), 8)


def test_transparent_png_to_jpeg_is_flattened_on_white(engine):
    source = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    source.paste((10, 120, 10, 255), (20, 20, 60, 60))
    out = io.BytesIO()
    source.save(out, "PNG")
    image, _ = render_one(engine, out.getvalue(), (40, 40), Mode.FIT, JPG)
    assert close_to(image.getpixel((1, 1)), (255, 255, 255), 8)
    assert close_to(image.getpixel((20, 20)), (10, 120, 10), 20)


def test_alpha_png_keeps_alpha_when_output_is_png(engine):
    image, _ = render_one(engine, logo_png(), (200, 200), Mode.FIT, PNG)
    assert image.mode == "RGBA" and image.size == (188, 200)
    assert image.getchannel("A").getextrema() == (0, 255)


def test_exif_orientation_is_applied(engine):
    image, _ = render_one(engine, two_colour_jpeg(orientation=6), None, Mode.FIT, JPG)
    assert image.size == (40, 60)
    assert close_to(image.getpixel((20, 5)), (255, 0, 0)) and close_to(
        image.getpixel((20, 55)), (0, 0, 255))
    assert image.getexif().get(0x0112, 1) == 1


def test_exif_orientation_with_resize_and_shrink_on_load(engine):
    big = Image.new("RGB", (3000, 2000), (255, 0, 0))
    big.paste((0, 0, 255), (1500, 0, 3000, 2000))
    exif = Image.Exif()
    exif[0x0112] = 8
    out = io.BytesIO()
    big.save(out, "JPEG", exif=exif.tobytes())
    image, _ = render_one(engine, out.getvalue(), (100, 100), Mode.FIT, JPG)
    # orientation 8 is 90 degrees anticlockwise: the right (blue) half goes on top
    assert image.size == (67, 100)
    assert close_to(image.getpixel((33, 5)), (0, 0, 255)) and close_to(
        image.getpixel((33, 95)), (255, 0, 0))


def test_metadata_is_stripped_but_the_colour_profile_kept(engine):
    source = two_colour_jpeg()
    image, _ = render_one(engine, source, (30, 30), Mode.FIT, JPG)
    assert image.info.get("icc_profile") == opened(source).info["icc_profile"]
    assert 0x010F not in image.getexif()


def test_strip_false_keeps_exif(engine):
    image, _ = render_one(engine, two_colour_jpeg(), (30, 30), Mode.FIT, JPG,
                          EncodeOptions(strip=False))
    assert image.getexif().get(0x010F) == "CameraMaker"


def test_animated_gif_keeps_frames_delays_and_loop(engine):
    out = three_frame_gif()
    _, data = render_one(engine, out, (60, 60), Mode.FIT, GIF)
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 3 and image.size == (60, 40) and image.info["loop"] == 3
    durations = []
    for index in range(3):
        image.seek(index)
        durations.append(image.info["duration"])
        assert image.size == (60, 40)
    assert durations == [100, 200, 300]


def test_animated_gif_is_resized_frame_by_frame(engine):
    source = animated_gif(46, 350, 197)
    _, data = render_one(engine, source, (100, 100), Mode.FIT, GIF)
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == Image.open(io.BytesIO(source)).n_frames == 46
    assert image.size == (100, 56)


def test_animated_webp_to_gif_keeps_frames_and_durations(engine):
    frames = [Image.new("RGBA", (120, 80), colour)
              for colour in ((255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:],
                   duration=[100, 200, 300], loop=2)
    _, data = render_one(engine, out.getvalue(), (60, 60), Mode.FIT, GIF)
    image = Image.open(io.BytesIO(data))
    # The loop count is not checked: ImageMagick writes 1 here, whatever the WebP says.
    assert image.n_frames == 3 and image.size == (60, 40)
    durations = []
    for index in range(3):
        image.seek(index)
        durations.append(image.info["duration"])
    assert durations == [100, 200, 300]


def test_animated_gif_to_png_keeps_the_first_frame(engine):
    image, _ = render_one(engine, animated_gif(), (100, 100), Mode.FIT, PNG)
    assert image.format == "PNG" and getattr(image, "n_frames", 1) == 1
    assert image.size == (100, 75)


@pytest.mark.parametrize("name,pillow", [("webp", "WEBP"), ("avif", "AVIF"), ("png", "PNG"),
                                         ("gif", "GIF"), ("jpg", "JPEG")])
def test_output_formats_decode_with_pillow(engine, name, pillow):
    image, _ = render_one(engine, picture(300, 200), (150, 150), Mode.FIT, by_name(name))
    assert image.format == pillow and image.size == (150, 100)


@pytest.mark.parametrize("name", ["jpg", "png", "gif", "webp"])
def test_same_input_gives_the_same_bytes(engine, name):
    data = picture(500, 300, "RGB", "PNG")
    spec = [VariantSpec((120, 120), Mode.PAD, by_name(name))]
    assert engine.render(data, spec, OPTIONS) == engine.render(data, spec, OPTIONS)


def test_quality_and_progressive_options(engine):
    data = photo(4224, 3168, quality=85, progressive=True)
    low, low_bytes = render_one(engine, data, (800, 800), options=EncodeOptions(quality=30))
    high, high_bytes = render_one(engine, data, (800, 800), options=EncodeOptions(quality=95))
    assert len(low_bytes) < len(high_bytes) / 2
    progressive, _ = render_one(engine, data, (800, 800),
                                options=EncodeOptions(progressive=True))
    assert progressive.info.get("progressive") and not high.info.get("progressive")
    assert JpegImagePlugin.get_sampling(high) == 2  # 4:2:0


def test_no_resize_and_same_format_returns_the_verified_bytes(engine):
    data = animated_gif()
    assert engine.render(data, [VariantSpec(None, Mode.FIT, None, verbatim=True)],
                         OPTIONS) == [data]


def test_png_bytes_under_a_jpg_name_are_converted(engine):
    data = picture(40, 40, fmt="PNG")
    (out,) = engine.render(data, [VariantSpec(None, Mode.FIT, JPG, verbatim=True)], OPTIONS)
    assert opened(out).format == "JPEG"


# Hostile inputs: each is refused with a clear error.

@pytest.mark.parametrize("payload", [
    b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
    b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://x.example/x.jpg\"|ls \"-la)'\n"
    b"pop graphic-context\n",
    b"%!PS-Adobe-3.0\n/x 1 def\nshowpage\n",
    b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    b"<?xml version='1.0'?><image><read filename='/etc/passwd'/></image>",
    b"ephemeral:/etc/passwd",
    b"msl:/tmp/x.msl",
    bytes(range(256)) * 10,
])
def test_non_image_payloads_are_refused_before_imagemagick(engine, payload):
    with pytest.raises(ClientError, match="not an allowed image type"):
        engine.render(payload, [VariantSpec((10, 10), Mode.FIT, JPG)], OPTIONS)


def test_truncated_jpeg_is_refused(engine):
    data = photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0")[:300_000]
    with pytest.raises(ClientError, match="truncated"):
        engine.render(data, [VariantSpec(None, Mode.FIT, None, verbatim=True)], OPTIONS)


def test_truncated_png_is_refused(engine):
    data = logo_png()[:100_000]
    with pytest.raises(ClientError, match="cannot"):
        engine.render(data, [VariantSpec((10, 10), Mode.FIT, PNG)], OPTIONS)


def test_png_declaring_20000_by_20000_is_refused_from_its_header(engine):
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))
    with pytest.raises(TooLarge, match="max_pixels"):
        engine.render(data, [VariantSpec((10, 10), Mode.FIT, PNG)], OPTIONS)


def test_gif_with_thousands_of_frames_is_refused(engine):
    frames = [Image.new("P", (4, 4), index % 2) for index in range(1200)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], optimize=False)
    with pytest.raises(TooLarge, match="max_frames"):
        engine.render(out.getvalue(), [VariantSpec((2, 2), Mode.FIT, GIF)], OPTIONS)


def test_gif_frame_larger_than_its_screen_is_refused(engine):
    """A 10x10 screen declared, then a 12000x12000 frame: refused, not decoded."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 12000, 12000, 0) + b"\x02\x02\x4c\x01\x00"
    with pytest.raises(TooLarge, match="max_pixels"):
        engine.render(screen + frame + b";", [VariantSpec((10, 10), Mode.FIT, PNG)], OPTIONS)


def test_png_text_profile_cannot_embed_a_server_file(engine):
    """CVE-2022-44268: a tEXt 'profile' naming a file must not leak it."""
    source = picture(32, 32, fmt="PNG")
    end = source.rindex(b"IEND") - 4
    hostile = source[:end] + png_chunk(b"tEXt", b"profile\x00/etc/passwd") + source[end:]
    for options in (EncodeOptions(), EncodeOptions(strip=False)):
        (out,) = engine.render(hostile, [VariantSpec((16, 16), Mode.FIT, PNG)], options)
        assert b"root:" not in out and b"726f6f74" not in out  # "root" in hex


def test_an_output_over_max_pixels_is_refused(engine):
    with pytest.raises(TooLarge, match="max_pixels"):
        engine.render(picture(20, 20), [VariantSpec((60000, 60000), Mode.CROP, JPG)], OPTIONS)


def test_the_time_limit_aborts_a_long_call(engine):
    from imagepipe.imaging import ImageLimits

    hasty = type(engine)(ImageLimits(time_limit=0.0), engine.formats)
    with pytest.raises(TooLarge, match=r"MAGICK_TIME_LIMIT \(0 s\) reached"):
        hasty.render(photo(),
                     [VariantSpec((1024, 1024), Mode.FIT, JPG)], OPTIONS)


def test_jpeg_declaring_a_huge_size_is_refused_from_its_header(engine):
    data = bytearray(picture(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(TooLarge, match="60000x60000 = 3600000000 pixels exceed max_pixels"):
        engine.render(bytes(data), [VariantSpec((10, 10), Mode.FIT, JPG)], OPTIONS)


# The engines agree.  Different resamplers (ImageMagick's Lanczos on the
# DCT-scaled decode vs Pillow's reduce + Lanczos), JPEG encoders and GIF
# quantisers differ by a level or two per pixel on photos (measured: 0.6-1.8
# on JPEG, about 2.5 on undithered GIF palettes); a wrong crop offset, a
# flipped orientation or a black background differs by tens.  So: a mean
# absolute difference per channel under 4 levels of 255.
AGREEMENT = 4.0


def _flat(image):
    """RGB laid on grey, so colour under fully transparent pixels does not count."""
    image = image.convert("RGBA")
    flat = Image.new("RGB", image.size, (128, 128, 128))
    flat.paste(image, mask=image.getchannel("A"))
    return flat


def _frames(data):
    image = Image.open(io.BytesIO(data))
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        yield image.convert("RGBA")


SOURCES = {
    "real-photo": lambda: sample(PHOTO),
    "photo": photo,
    "progressive": lambda: photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0"),
    "alpha-png": logo_png,
    "animated-gif": lambda: animated_gif(46, 350, 197),
}


@pytest.mark.parametrize("name,specs", [
    ("real-photo", [VariantSpec((1024, 1024), Mode.FIT, JPG),
                    VariantSpec((250, 250), Mode.FIT, WEBP),
                    VariantSpec((50, 50), Mode.CROP, JPG)]),
    ("photo", [VariantSpec((1024, 1024), Mode.FIT, JPG),
                                      VariantSpec((250, 250), Mode.FIT, JPG),
                                      VariantSpec((50, 50), Mode.CROP, JPG),
                                      VariantSpec((300, 300), Mode.PAD, PNG)]),
    ("progressive", [VariantSpec((1024, 1024), Mode.FIT, JPG),
                     VariantSpec((300, 300), Mode.PAD, JPG),
                     VariantSpec((200, 200), Mode.FIT, WEBP)]),
    ("alpha-png", [VariantSpec((200, 200), Mode.FIT, PNG),
                   VariantSpec((200, 200), Mode.PAD, JPG)]),
    ("animated-gif", [VariantSpec((100, 100), Mode.FIT, GIF),
                      VariantSpec((100, 100), Mode.CROP, PNG)]),
], ids=["real-photo", "photo", "progressive", "alpha-png", "animated-gif"])
def test_engines_agree_on_photos_alpha_and_animation(name, specs):
    from support.magick import magick_status
    from imagepipe.imaging import ImageLimits

    limits = ImageLimits(max_pixels=50_000_000, max_frames=500)
    formats = magick_status().formats  # ImageMagick is started before Wand is imported
    from imagepipe.imaging.pillow_engine import PillowEngine, available_formats
    from imagepipe.imaging.wand_engine import WandEngine

    pillow, wand = PillowEngine(limits, available_formats()), WandEngine(limits, formats)
    data = SOURCES[name]()
    for ours, theirs in zip(pillow.render(data, specs, OPTIONS),
                            wand.render(data, specs, OPTIONS)):
        a, b = opened(ours), opened(theirs)
        assert (a.format, a.size) == (b.format, b.size)
        for frame, other in zip(_frames(ours), _frames(theirs), strict=True):
            difference = ImageStat.Stat(ImageChops.difference(_flat(frame), _flat(other)))
            assert max(difference.mean) < AGREEMENT
            alpha = ImageChops.difference(frame.getchannel("A"), other.getchannel("A"))
            assert ImageStat.Stat(alpha).mean[0] < AGREEMENT


def test_animated_gif_to_webp_keeps_the_animation(engine):
    source = animated_gif(46, 350, 197)
    _, data = render_one(engine, source, (100, 100), Mode.FIT, WEBP)
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (100, 56)
    assert image.n_frames == Image.open(io.BytesIO(source)).n_frames == 46


def test_animated_webp_output_keeps_each_frames_delay_and_the_loop(engine):
    out = three_frame_gif()
    _, data = render_one(engine, out, (60, 60), Mode.FIT, WEBP)
    image = Image.open(io.BytesIO(data))
    # GIF loop 3 is three repeats after the first play; WebP counts plays.
    assert image.n_frames == 3 and image.size == (60, 40) and image.info["loop"] == 4
    assert durations(image) == [100, 200, 300]


