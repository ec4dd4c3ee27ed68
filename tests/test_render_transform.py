"""On-the-fly transforms (``Engine.transform``), checked with Pillow as the independent decoder.

Every test runs against each engine (the ``engine`` fixture is parametrized
over Wand and Pillow); the last tests compare the two engines on the same
transforms.  Pictures with flat coloured areas make every placement,
rotation and flip visible as a colour at a known pixel.
"""

import io

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from support.decoding import durations, opened
from support.samples import PHOTO, animated_gif, bordered_png, logo_png, photo, sample
from imagepipe.errors import ClientError, TooLarge
from imagepipe.imaging import EncodeOptions, ImageLimits
from imagepipe.imaging.transform import Transform

DEFAULTS = EncodeOptions()
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def encoded(image, fmt="PNG", **params):
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def quadrants(width=60, height=40, fmt="PNG", **params):
    """Top left red, top right green, bottom left blue, bottom right yellow."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(GREEN, (width // 2, 0, width, height // 2))
    image.paste(BLUE, (0, height // 2, width // 2, height))
    image.paste(YELLOW, (width // 2, height // 2, width, height))
    return encoded(image, fmt, **params)


def stripes(width, height):
    """Three equal stripes, red, green, blue: left to right when wide, top to bottom when tall."""
    image = Image.new("RGB", (width, height), RED)
    if width > height:
        image.paste(GREEN, (width // 3, 0, 2 * width // 3, height))
        image.paste(BLUE, (2 * width // 3, 0, width, height))
    else:
        image.paste(GREEN, (0, height // 3, width, 2 * height // 3))
        image.paste(BLUE, (0, 2 * height // 3, width, height))
    return encoded(image)


def bordered(border=(40, 200, 40), size=(100, 80), inner=(12, 9, 70, 50)):
    """A picture with a uniform border (a little noise in it) around a red and blue inside."""
    image = Image.new("RGB", size, border)
    image.putpixel((5, 5), tuple(min(255, c + 12) for c in border))  # within the fuzz
    left, top, right, bottom = inner
    image.paste(RED, (left, top, (left + right) // 2, bottom))
    image.paste(BLUE, ((left + right) // 2, top, right, bottom))
    return encoded(image)


def three_frame_gif():
    """A 120x80 GIF: red, green, blue for 100, 200 and 300 ms, loop 3."""
    frames = [Image.new("RGB", (120, 80), colour) for colour in (RED, GREEN, BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:],
                   duration=[100, 200, 300], loop=3)


def made(engine, data, defaults=DEFAULTS, accept=(), **fields):
    """The ``Rendered`` of ``Transform(**fields)``, and its decoded image."""
    rendered = engine.transform(data, Transform(**fields), defaults, accept)
    image = opened(rendered.data)
    assert (rendered.width, rendered.height) == image.size
    return rendered, image


def alpha(image):
    """The alpha channel, whatever the mode the encoder chose (PNG may be paletted)."""
    return image.convert("RGBA").getchannel("A")


def close_to(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def corners(image, inset=4):
    """RGB of the top-left, top-right, bottom-left and bottom-right corners."""
    width, height = image.size
    rgb = image.convert("RGB")
    return [rgb.getpixel(xy) for xy in ((inset, inset), (width - 1 - inset, inset),
                                        (inset, height - 1 - inset),
                                        (width - 1 - inset, height - 1 - inset))]


def same_colours(found, expected, tolerance=40):
    return all(close_to(a, b, tolerance) for a, b in zip(found, expected, strict=True))


# Sizes, by mode, with and without enlarge.  The source is 400x200.

@pytest.mark.parametrize("fields,size", [
    ({}, (400, 200)),
    ({"width": 100, "height": 100}, (100, 50)),
    ({"width": 100}, (100, 50)),
    ({"height": 50}, (100, 50)),
    ({"width": 1000, "height": 1000}, (400, 200)),
    ({"width": 1000, "height": 1000, "enlarge": True}, (1000, 500)),
    ({"height": 400, "enlarge": True}, (800, 400)),
    ({"width": 100, "height": 100, "mode": "fill"}, (100, 100)),
    ({"width": 300, "height": 300, "mode": "fill"}, (300, 200)),
    ({"width": 1000, "height": 1000, "mode": "fill"}, (400, 200)),
    ({"width": 1000, "height": 1000, "mode": "fill", "enlarge": True}, (1000, 1000)),
    ({"width": 100, "height": 100, "mode": "pad"}, (100, 100)),
    ({"width": 1000, "height": 500, "mode": "pad"}, (1000, 500)),
    ({"width": 1000, "height": 500, "mode": "pad", "enlarge": True}, (1000, 500)),
    ({"width": 100, "height": 150, "mode": "force"}, (100, 150)),
    ({"width": 1000, "height": 100, "mode": "force"}, (400, 100)),
    ({"width": 1000, "height": 100, "mode": "force", "enlarge": True}, (1000, 100)),
], ids=lambda value: "-".join(f"{k}{v}" for k, v in value.items()) if isinstance(value, dict)
   else None)
def test_each_mode_gives_its_exact_size(engine, fields, size):
    _, image = made(engine, quadrants(400, 200), **fields)
    assert image.size == size


def test_fit_keeps_every_part_of_the_picture(engine):
    _, image = made(engine, quadrants(400, 200), width=100, height=100)
    assert same_colours(corners(image), [RED, GREEN, BLUE, YELLOW])


def test_force_stretches_without_cropping(engine):
    _, image = made(engine, quadrants(400, 200), width=50, height=150, mode="force")
    assert image.size == (50, 150)
    assert same_colours(corners(image), [RED, GREEN, BLUE, YELLOW])


def test_pad_keeps_the_picture_whole_inside_the_canvas(engine):
    _, image = made(engine, quadrants(400, 200), width=100, height=100, mode="pad")
    assert alpha(image).getbbox() == (0, 25, 100, 75)
    assert same_colours(corners(image.crop((0, 25, 100, 75))), [RED, GREEN, BLUE, YELLOW])


# Gravity: which stripe the fill crop keeps, and where pad puts the picture.

_ACROSS = {"west": RED, "center": GREEN, "east": BLUE}
_DOWN = {"north": RED, "center": GREEN, "south": BLUE}
GRAVITIES = ("center", "north", "south", "east", "west", "northeast", "northwest",
             "southeast", "southwest")


def _part(gravity, names):
    return next((colour for name, colour in names.items() if name in gravity), names["center"])


def _filled_corners(engine, source, gravity):
    """The corner colours of ``source`` filled into 100x100 with ``gravity``."""
    _, image = made(engine, source, width=100, height=100, mode="fill", gravity=gravity)
    assert image.size == (100, 100)
    return corners(image, 0)


@pytest.mark.parametrize("gravity", GRAVITIES)
def test_fill_crops_a_wide_picture_by_gravity(engine, gravity):
    assert same_colours(_filled_corners(engine, stripes(300, 100), gravity),
                        [_part(gravity, _ACROSS)] * 4, 8)


@pytest.mark.parametrize("gravity", GRAVITIES)
def test_fill_crops_a_tall_picture_by_gravity(engine, gravity):
    assert same_colours(_filled_corners(engine, stripes(100, 300), gravity),
                        [_part(gravity, _DOWN)] * 4, 8)


@pytest.mark.parametrize("gravity,box", [
    ("northwest", (0, 0)), ("north", (30, 0)), ("northeast", (60, 0)),
    ("west", (0, 40)), ("center", (30, 40)), ("east", (60, 40)),
    ("southwest", (0, 80)), ("south", (30, 80)), ("southeast", (60, 80)),
])
def test_pad_places_the_picture_by_gravity(engine, gravity, box):
    _, image = made(engine, quadrants(40, 20), width=100, height=100, mode="pad",
                    gravity=gravity)
    left, top = box
    assert alpha(image).getbbox() == (left, top, left + 40, top + 20)
    assert same_colours(corners(image.crop((left, top, left + 40, top + 20)), 2),
                        [RED, GREEN, BLUE, YELLOW], 8)


def test_fill_crop_is_centred_on_the_focal_point(engine):
    # 300x100 stripes, 100 wide cut centred on x = 0.4 * 300 = 120: columns 70..170,
    # 30 of red then green.
    _, image = made(engine, stripes(300, 100), width=100, height=100, mode="fill",
                    gravity="focus", focus=(0.4, 0.5))
    rgb = image.convert("RGB")
    assert close_to(rgb.getpixel((25, 50)), RED, 8)
    assert close_to(rgb.getpixel((35, 50)), GREEN, 8)
    assert close_to(rgb.getpixel((99, 50)), GREEN, 8)


def test_a_focal_point_near_the_edge_keeps_the_crop_inside(engine):
    _, image = made(engine, stripes(300, 100), width=100, height=100, mode="fill",
                    gravity="focus", focus=(1.0, 0.0))
    assert same_colours(corners(image, 0), [BLUE] * 4, 8)


# Crop box, trim, rotation, flips.

def test_crop_box_cuts_fractions_of_the_source(engine):
    _, image = made(engine, quadrants(200, 100), crop=(0.5, 0.0, 1.0, 0.5))
    assert image.size == (100, 50)
    assert same_colours(corners(image, 0), [GREEN] * 4, 8)


def test_crop_box_then_resize(engine):
    _, image = made(engine, quadrants(200, 100), crop=(0.25, 0.25, 0.75, 0.75), width=50)
    assert image.size == (50, 25)
    assert same_colours(corners(image, 2), [RED, GREEN, BLUE, YELLOW], 8)


def test_trim_removes_the_uniform_border(engine):
    _, image = made(engine, bordered(), trim=True)
    assert image.size == (58, 41)
    assert same_colours(corners(image, 0), [RED, BLUE, RED, BLUE], 8)


def test_trim_then_fit(engine):
    _, image = made(engine, bordered(size=(300, 200), inner=(50, 20, 250, 120)), trim=True,
                    width=100)
    assert image.size == (100, 50)


def test_trim_a_transparent_border(engine):
    rendered, image = made(engine, bordered_png(), trim=True)
    source = opened(bordered_png()).getchannel("A")
    # Kept: every pixel more than 10 % opaque (the border is transparent).
    left, top, right, bottom = source.point(lambda a: 255 if a > 26 else 0).getbbox()
    assert rendered.format.name == "png"
    assert abs(image.width - (right - left)) <= 1 and abs(image.height - (bottom - top)) <= 1
    assert image.size < source.size


def test_trim_of_a_uniform_picture_keeps_it_whole(engine):
    _, image = made(engine, encoded(Image.new("RGB", (30, 20), GREEN)), trim=True)
    assert image.size == (30, 20)


def test_crop_box_comes_before_trim(engine):
    # The left half holds the border on three sides and the red inside: trimmed to the red.
    _, image = made(engine, bordered(), crop=(0.0, 0.0, 0.41, 1.0), trim=True)
    assert image.size == (29, 41)
    assert same_colours(corners(image, 0), [RED] * 4, 8)


@pytest.mark.parametrize("rotate,size,colours", [
    (90, (40, 60), [BLUE, RED, YELLOW, GREEN]),
    (180, (60, 40), [YELLOW, BLUE, GREEN, RED]),
    (270, (40, 60), [GREEN, YELLOW, RED, BLUE]),
])
def test_rotation_is_clockwise(engine, rotate, size, colours):
    _, image = made(engine, quadrants(), rotate=rotate)
    assert image.size == size
    assert same_colours(corners(image), colours, 8)


@pytest.mark.parametrize("flip,colours", [("h", [GREEN, RED, YELLOW, BLUE]),
                                          ("v", [BLUE, YELLOW, RED, GREEN])])
def test_flips(engine, flip, colours):
    _, image = made(engine, quadrants(), flip=flip)
    assert image.size == (60, 40)
    assert same_colours(corners(image), colours, 8)


def test_rotation_comes_before_the_flip(engine):
    _, image = made(engine, quadrants(), rotate=90, flip="h")
    assert same_colours(corners(image), [RED, BLUE, GREEN, YELLOW], 8)


def test_rotation_comes_before_the_fill_crop(engine):
    # 100x300 tall stripes turned a quarter: wide, blue left, red right; west keeps blue.
    _, image = made(engine, stripes(100, 300), rotate=90, width=100, height=100, mode="fill",
                    gravity="west")
    assert same_colours(corners(image, 0), [BLUE] * 4, 8)


def quadrant_jpeg(orientation, size=(60, 40)):
    """``quadrants`` as a JPEG with an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return quadrants(*size, fmt="JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_comes_before_the_crop_box(engine):
    # Orientation 6 turns the stored picture a quarter clockwise: upright 40x60 with
    # blue, red on top and yellow, green below; its top-right quarter is red.
    _, image = made(engine, quadrant_jpeg(6), crop=(0.5, 0.0, 1.0, 0.5))
    assert image.size == (20, 30)
    assert same_colours(corners(image, 3), [RED] * 4)


def test_shrink_on_load_with_orientation_and_rotation(engine):
    # Upright 2000x3000 (orientation 6), turned back to 3000x2000 by rotate 90, fit 300.
    rendered, image = made(engine, quadrant_jpeg(6, (3000, 2000)), rotate=90, width=300,
                           height=300)
    assert rendered.format.name == "jpg" and image.size == (300, 200)
    assert same_colours(corners(image), [YELLOW, BLUE, GREEN, RED])


@pytest.mark.parametrize("fields,shrink_to", [
    # Upright 2000x3000, turned 3000x2000, fit 300x200: decoded at least 200x300 upright.
    ({"rotate": 90, "width": 300, "height": 300}, (200, 300)),
    ({"rotate": 180, "width": 300, "height": 300}, (200, 300)),
    ({"width": 300, "height": 300}, (200, 300)),
    ({"rotate": 270, "width": 200}, (133, 200)),
    ({"width": 300, "crop": (0.0, 0.0, 0.5, 0.5)}, None),  # cut at full size
    ({"width": 300, "trim": True}, None),
    ({}, None),
])
def test_shrink_on_load_is_sized_from_the_final_resize(engine, monkeypatch, fields, shrink_to):
    asked = []
    decode = type(engine)._decode

    def spy(self, data, info, hint, *rest):
        asked.append(hint)
        return decode(self, data, info, hint, *rest)

    monkeypatch.setattr(type(engine), "_decode", spy)
    made(engine, quadrant_jpeg(6, (3000, 2000)), **fields)
    assert asked == [shrink_to]


# Backgrounds and formats.

def test_pad_is_transparent_in_png(engine):
    _, image = made(engine, quadrants(400, 200), width=100, height=100, mode="pad")
    assert alpha(image).getpixel((50, 5)) == 0 and alpha(image).getpixel((50, 50)) == 255


def test_pad_is_the_default_background_in_jpeg(engine):
    _, image = made(engine, quadrants(400, 200), width=100, height=100, mode="pad",
                    format="jpg")
    assert close_to(image.getpixel((50, 5)), (255, 255, 255), 8)
    _, image = made(engine, quadrants(400, 200), EncodeOptions(background="#0000ff"),
                    width=100, height=100, mode="pad", format="jpg")
    assert close_to(image.getpixel((50, 5)), BLUE, 8)


def test_pad_takes_the_transform_background_in_any_format(engine):
    for fmt in ("png", "jpg"):
        _, image = made(engine, quadrants(400, 200), width=100, height=100, mode="pad",
                        format=fmt, background="#00ff00")
        assert close_to(image.convert("RGBA").getpixel((50, 5)), GREEN + (255,), 8)


def test_alpha_is_flattened_on_the_background_in_jpeg(engine):
    data = logo_png()
    _, white = made(engine, data, width=200, format="jpg")
    _, red = made(engine, data, width=200, format="jpg", background="red")
    assert close_to(white.getpixel((1, 1)), (255, 255, 255), 8)
    assert close_to(red.getpixel((1, 1)), RED, 8)


def avif(mode):
    image = Image.new(mode, (40, 30), (10, 200, 10, 128)[:len(mode)])
    return encoded(image, "AVIF")


@pytest.mark.parametrize("source,accept,written", [
    ("jpg", ("avif", "webp"), "avif"),
    ("jpg", ("webp",), "webp"),
    ("jpg", ("jxl", "webp"), "webp"),  # a name no engine writes is passed over
    ("jpg", (), "jpg"),
    ("png", (), "png"),
    ("gif", (), "gif"),
    ("webp", (), "webp"),
    ("avif-rgb", (), "jpg"),
    ("avif-rgba", ("webp",), "webp"),
])
def test_format_auto(engine, source, accept, written):
    data = {"jpg": quadrants(fmt="JPEG"), "png": quadrants(), "gif": quadrants(fmt="GIF"),
            "webp": quadrants(fmt="WEBP"), "avif-rgb": avif("RGB"),
            "avif-rgba": avif("RGBA")}[source]
    rendered, image = made(engine, data, accept=accept, format="auto", width=20)
    assert rendered.format.name == written
    assert image.format == {"jpg": "JPEG"}.get(written, written.upper())


def test_format_auto_writes_png_for_an_avif_with_alpha(engine, request):
    if engine.name == "wand":
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="ImageMagick 6.9.11 here decodes AVIF without its alpha "
                                "(and with wrong colours): Wand sees no alpha, writes JPEG"))
    rendered, image = made(engine, avif("RGBA"), format="auto", width=20)
    assert rendered.format.name == "png" and image.format == "PNG"
    low, high = alpha(image).getextrema()
    assert abs(low - 128) <= 8 and abs(high - 128) <= 8


@pytest.mark.parametrize("source,pillow", [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"),
                                           ("WEBP", "WEBP"), ("AVIF", "AVIF")])
def test_no_format_keeps_the_sources(engine, source, pillow):
    rendered, image = made(engine, quadrants(fmt=source), accept=("webp",), width=30)
    assert image.format == pillow and rendered.format.coder == source
    assert image.size == (30, 20)


def test_an_explicit_format_is_written(engine):
    rendered, image = made(engine, quadrants(), accept=("avif",), format="webp")
    assert rendered.format.name == "webp" and image.format == "WEBP"


def test_quality_changes_the_size(engine):
    data = photo(4224, 3168, quality=85, progressive=True)
    low, _ = made(engine, data, width=800, quality=30)
    high, _ = made(engine, data, width=800, quality=95)
    assert len(low.data) < len(high.data) / 2


def test_unset_settings_come_from_the_defaults(engine):
    data = photo(4224, 3168, quality=85, progressive=True)
    mine, _ = made(engine, data, width=300, quality=30, filter="mitchell")
    theirs, _ = made(engine, data, EncodeOptions(quality=30, filter="mitchell"), width=300)
    assert mine.data == theirs.data


def test_progressive_jpeg(engine):
    data = photo(4224, 3168, quality=85, progressive=True)
    _, progressive = made(engine, data, width=400, progressive=True)
    _, baseline = made(engine, data, width=400)
    assert progressive.info.get("progressive") and not baseline.info.get("progressive")


def test_metadata_is_stripped_but_the_colour_profile_kept(engine):
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = quadrants(fmt="JPEG", exif=exif.tobytes(), icc_profile=profile)
    _, image = made(engine, data, width=30, rotate=90)
    assert image.info.get("icc_profile") == profile
    assert 0x010F not in image.getexif()


# Animations.

def frame_colours(image):
    colours = []
    for index in range(image.n_frames):
        image.seek(index)
        colours.append(image.convert("RGB").getpixel((5, 5)))
    return colours


def test_animated_gif_to_gif_keeps_every_frame(engine):
    rendered, image = made(engine, three_frame_gif(), width=60, height=60, rotate=90,
                           crop=(0.0, 0.0, 0.5, 1.0))
    # 60x80 cut, turned 80x60, fit 60x45.
    assert rendered.format.name == "gif" and image.size == (60, 45)
    assert image.n_frames == 3 and image.info["loop"] == 3
    assert durations(image) == [100, 200, 300]
    assert same_colours(frame_colours(image), [RED, GREEN, BLUE], 8)


def test_animated_gif_to_webp_keeps_every_frame(engine):
    rendered, image = made(engine, three_frame_gif(), width=60, format="webp", flip="h")
    assert rendered.format.name == "webp" and image.n_frames == 3
    assert image.size == (60, 40) and durations(image) == [100, 200, 300]


def test_animated_gif_to_jpeg_is_its_first_frame(engine):
    rendered, image = made(engine, three_frame_gif(), width=60, format="jpg")
    assert rendered.format.name == "jpg" and getattr(image, "n_frames", 1) == 1
    assert image.size == (60, 40) and close_to(image.getpixel((30, 20)), RED, 8)


def test_animation_is_trimmed_by_its_first_frame(engine):
    frames = []
    for inside in (RED, BLUE):
        frame = Image.new("RGB", (60, 40), GREEN)
        frame.paste(inside, (10, 5, 50, 35) if inside == RED else (0, 0, 60, 40))
        frames.append(frame)
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    _, image = made(engine, data, trim=True)
    assert image.n_frames == 2 and image.size == (40, 30)


def test_animated_gif_pads_every_frame(engine):
    source = animated_gif(46, 350, 197)
    _, image = made(engine, source, width=200, height=200, mode="pad", gravity="north")
    assert image.n_frames == 46 and image.size == (200, 200)


# Limits and bad data: refused as by render.

def test_an_output_over_max_pixels_is_refused(engine):
    with pytest.raises(TooLarge, match="max_pixels"):
        engine.transform(quadrants(), Transform(width=16384, height=16384, mode="force",
                                                enlarge=True), DEFAULTS)


def test_a_huge_resize_before_the_fill_crop_is_refused(engine):
    thin = encoded(Image.new("RGB", (1, 400), RED))
    with pytest.raises(TooLarge, match="max_pixels"):
        engine.transform(thin, Transform(width=16384, height=10, mode="fill", enlarge=True),
                         DEFAULTS)


def test_the_frames_of_an_animated_output_count_against_max_pixels(engine):
    transform = Transform(width=5000, height=4000, mode="force", enlarge=True, format="gif")
    with pytest.raises(TooLarge, match=r"5000x4000 x 3 frames exceeds max_pixels"):
        engine.transform(three_frame_gif(), transform, DEFAULTS)


@pytest.fixture
def strict(engine):
    """An engine of the same kind with max_pixels 1 M (Pillow's process-wide check restored)."""
    before = Image.MAX_IMAGE_PIXELS
    yield type(engine)(ImageLimits(max_pixels=1_000_000), engine.formats)
    Image.MAX_IMAGE_PIXELS = before


def test_an_output_over_max_pixels_after_trimming_is_refused(strict):
    # 200x200 fit 200 wide is 40 K pixels; trimmed to its 2x200 stripe, 200 wide is
    # 200x20000 = 4 M pixels.
    image = Image.new("RGB", (200, 200), GREEN)
    image.paste(RED, (99, 0, 101, 200))
    data = encoded(image)
    assert opened(strict.transform(data, Transform(width=200, enlarge=True),
                                   DEFAULTS).data).size == (200, 200)
    with pytest.raises(TooLarge, match="200x20000 exceeds max_pixels"):
        strict.transform(data, Transform(width=200, enlarge=True, trim=True), DEFAULTS)


def test_non_images_are_refused(engine):
    with pytest.raises(ClientError, match="not an allowed image type"):
        engine.transform(b"<svg xmlns='http://www.w3.org/2000/svg'/>", Transform(), DEFAULTS)


def test_truncated_jpeg_is_refused(engine):
    data = photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0")[:300_000]
    with pytest.raises(ClientError, match="truncated"):
        engine.transform(data, Transform(width=100), DEFAULTS)


def test_corrupt_data_is_a_client_error(engine):
    data = logo_png()[:100_000]
    with pytest.raises(ClientError, match="cannot"):
        engine.transform(data, Transform(width=100), DEFAULTS)


def test_the_time_limit_aborts_a_long_call(engine):
    hasty = type(engine)(ImageLimits(time_limit=0.0), engine.formats)
    with pytest.raises(TooLarge, match=r"MAGICK_TIME_LIMIT \(0 s\) reached"):
        hasty.transform(photo(), Transform(width=500), DEFAULTS)


# The engines agree (see test_engine.AGREEMENT for why 4 levels of 255).
AGREEMENT = 4.0


@pytest.fixture(scope="module")
def engines():
    """A Wand and a Pillow engine, side by side."""
    from support.magick import magick_status

    limits = ImageLimits(max_pixels=50_000_000, max_frames=500)
    formats = magick_status().formats  # ImageMagick is started before Wand is imported
    from imagepipe.imaging.pillow_engine import PillowEngine, available_formats
    from imagepipe.imaging.wand_engine import WandEngine

    return WandEngine(limits, formats), PillowEngine(limits, available_formats())


SOURCES = {
    "real-photo": lambda: sample(PHOTO),
    "photo": photo,
    "progressive": lambda: photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0"),
}


@pytest.mark.parametrize("name,fields", [
    ("photo", {"width": 300, "height": 300, "mode": "fill", "gravity": "southeast"}),
    ("real-photo", {"width": 400, "height": 200, "mode": "fill", "gravity": "focus",
                    "focus": (0.3, 0.7)}),
    ("photo", {"crop": (0.1, 0.2, 0.6, 0.9), "rotate": 90, "width": 400}),
    ("progressive", {"crop": (0.5, 0.0, 1.0, 0.5), "rotate": 270, "flip": "v", "width": 300,
                     "height": 300, "mode": "pad", "format": "png"}),
], ids=["fill-southeast", "fill-focus", "crop-rotate", "crop-rotate-flip-pad"])
def test_engines_agree_on_a_photo(engines, name, fields):
    data = SOURCES[name]()
    wand, pillow = (opened(e.transform(data, Transform(**fields), DEFAULTS).data)
                    for e in engines)
    assert (wand.format, wand.size) == (pillow.format, pillow.size)
    difference = ImageStat.Stat(ImageChops.difference(flat(wand), flat(pillow)))
    assert max(difference.mean) < AGREEMENT


def flat(image):
    """RGB laid on grey, so colour under fully transparent pixels does not count."""
    image = image.convert("RGBA")
    grey = Image.new("RGB", image.size, (128, 128, 128))
    grey.paste(image, mask=image.getchannel("A"))
    return grey


@pytest.mark.parametrize("data", [bordered_png(), bordered()],
                         ids=["transparent-border", "coloured-border"])
def test_engines_agree_on_the_trimmed_box(engines, data):
    sizes = [opened(e.transform(data, Transform(trim=True), DEFAULTS).data).size
             for e in engines]
    (ww, wh), (pw, ph) = sizes
    assert abs(ww - pw) <= 1 and abs(wh - ph) <= 1
    assert sizes[0] < opened(data).size


@pytest.mark.parametrize("scale, size", [(0.5, (30, 20)), (2.0, (120, 80)), (0.01, (1, 1))])
def test_scale_sizes_the_output_as_a_multiple_of_the_source(engine, scale, size):
    _, image = made(engine, quadrants(), scale=scale, format="png")
    assert image.size == size


def test_scale_applies_after_the_crop_box_and_rotation(engine):
    _, image = made(engine, quadrants(), crop=(0, 0, 0.5, 1), rotate=90, scale=2.0,
                    format="png")
    assert image.size == (80, 60)


@pytest.mark.parametrize("fields, size", [
    (dict(width=30, enlarge=True, shrink=False), (60, 40)),  # would shrink: kept
    (dict(width=120, enlarge=True, shrink=False), (120, 80)),  # grows
    (dict(width=30, height=80, mode="force", enlarge=True, shrink=False), (60, 80)),
])
def test_without_shrink_nothing_gets_smaller(engine, fields, size):
    _, image = made(engine, quadrants(), format="png", **fields)
    assert image.size == size


def test_a_pixel_crop_box_keeps_that_part_clipped_to_the_source(engine):
    _, image = made(engine, quadrants(), crop_pixels=(30, 20, 500, 500), format="png")
    assert image.size == (30, 20)
    assert image.convert("RGB").getpixel((15, 10)) == YELLOW
    _, image = made(engine, quadrants(), crop_pixels=(0, 0, 30, 20), width=15, format="png")
    assert image.size == (15, 10)
    assert close_to(image.convert("RGB").getpixel((7, 5)), RED)


def test_a_pixel_crop_box_outside_the_source_is_refused(engine):
    with pytest.raises(ClientError, match="crop: box 60,0,90,10 lies outside the 60x40 source"):
        engine.transform(quadrants(), Transform(crop_pixels=(60, 0, 90, 10)), DEFAULTS)
