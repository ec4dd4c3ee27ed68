"""Transforms with steps (``Transform.then``), as Dirpy's commands in the order written
make them, rendered by each engine and checked with Pillow."""

import pytest
from PIL import ImageChops, ImageStat

from support.decoding import opened
from test_render_transform import BLUE, DEFAULTS, GREEN, RED, YELLOW, bordered, quadrants
from imagepipe.errors import TooLarge
from imagepipe.web.dialects.dirpy import parse
from imagepipe.imaging.transform import BadTransform


def dirpy(engine, query, source=None):
    """The Pillow image ``engine`` makes of ``source`` (quadrants 60x40) for a Dirpy query."""
    pairs = [tuple(part.partition("=")[::2]) for part in query.split("&")]
    rendered = engine.transform(source or quadrants(), parse("a.png", pairs).transform,
                                DEFAULTS)
    image = opened(rendered.data).convert("RGB")
    assert image.size == (rendered.width, rendered.height)
    return image


def near(colour, expected, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def test_transpose_then_resize_rotates_first(engine):
    image = dirpy(engine, "transpose=rotate90&resize=30x60")
    assert image.size == (30, 45)  # 40x60 once turned, fitted to 30x60
    # Counter-clockwise, as Dirpy turns: the top right corner comes to the top left.
    assert near(image.getpixel((2, 2)), GREEN) and near(image.getpixel((27, 42)), BLUE)


def test_resize_then_transpose_resizes_first(engine):
    image = dirpy(engine, "resize=30x60&transpose=rotate90")
    assert image.size == (20, 30)  # 30x20 fitted first, then turned
    assert near(image.getpixel((2, 2)), GREEN)


@pytest.mark.parametrize("query, corner", [
    ("transpose=flipvert", GREEN),  # around the vertical axis: left and right swap
    ("transpose=fliphorz", BLUE),  # around the horizontal axis: top and bottom swap
    ("transpose=rotate180", YELLOW),
    ("transpose=rotate270", BLUE),  # clockwise
])
def test_dirpy_transposes(engine, query, corner):
    image = dirpy(engine, query)
    assert near(image.getpixel((2, 2)), corner)


def test_pad_alone_pads_the_source_to_the_box(engine):
    image = dirpy(engine, "pad=80x80,bg:00f")
    assert image.size == (80, 80)
    assert near(image.getpixel((2, 2)), BLUE) and near(image.getpixel((77, 77)), BLUE)
    assert near(image.getpixel((12, 22)), RED) and near(image.getpixel((67, 57)), YELLOW)


def test_pad_by_gravity_and_inherited_size(engine):
    image = dirpy(engine, "crop=40x40,gravity:e&pad=50x50,gravity:nw&pad=bg:0f0")
    # crop keeps the right 40x40 (10 columns of red over blue, then green over
    # yellow), padded at the top left to 50x50 on white, then padded again to
    # the inherited 50x50 (nothing to do).
    assert image.size == (50, 50)
    assert near(image.getpixel((2, 2)), RED) and near(image.getpixel((15, 2)), GREEN)
    assert near(image.getpixel((37, 37)), YELLOW)
    assert near(image.getpixel((47, 47)), (255, 255, 255))


def test_a_pixel_crop_after_a_resize_is_in_the_resized_pixels(engine):
    assert dirpy(engine, "crop=0,0,30,20&resize=60x40").size == (60, 40)
    image = dirpy(engine, "resize=120x80&crop=0,0,30,20")
    assert image.size == (30, 20) and near(image.getpixel((28, 18)), RED)


def test_a_trim_after_a_resize_trims_the_resized_picture(engine):
    image = dirpy(engine, "resize=200x160&crop=border", bordered())
    width, height = image.size
    assert abs(width - 116) <= 4 and abs(height - 82) <= 4  # the 58x41 inside, doubled


def test_every_step_is_held_to_the_result_limits(engine):
    with pytest.raises(TooLarge, match="max_result_pixels"):
        dirpy(engine, "resize=8000x8000&resize=10x10")


def test_a_step_after_a_trim_is_held_to_the_limits_on_the_size_it_gets(engine):
    thin = bordered(inner=(12, 9, 14, 70))  # trims to 2x61: covering a box makes it huge
    with pytest.raises(TooLarge, match="4000x122000"):
        dirpy(engine, "crop=border&resize=pct:100&resize=4000x4000,fill", thin)


def test_a_step_after_a_trim_is_planned_on_the_trimmed_size(engine):
    tall = bordered(inner=(12, 9, 40, 70))  # trims to 28x61, 46x100 once fitted to 100x100
    image = dirpy(engine, "crop=border&resize=100x100&crop=0,85,40,100", tall)
    assert image.size == (40, 15)


def test_both_engines_make_the_same_steps_of_an_alpha_source():
    import io

    from PIL import Image

    from support.magick import magick_status
    from imagepipe.imaging import ImageLimits
    from imagepipe.imaging.pillow_engine import PillowEngine, available_formats
    from imagepipe.imaging.wand_engine import WandEngine

    limits = ImageLimits(max_pixels=50_000_000, max_frames=500)
    engines = (WandEngine(limits, magick_status().formats),
               PillowEngine(limits, available_formats()))
    source = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    source.paste((255, 0, 0, 255), (10, 10, 50, 30))
    out = io.BytesIO()
    source.save(out, "PNG")
    for query in ("resize=100x100&pad=120x120,bg:000&save=fmt:jpg",
                  "pad=100x100,bg:00f&crop=border&save=fmt:jpg",
                  "resize=30x30&pad=40x40,bg:f00&save=fmt:png"):
        wand, pillow = (dirpy(engine, query, out.getvalue()) for engine in engines)
        assert wand.size == pillow.size, query
        difference = ImageChops.difference(wand, pillow).convert("L")
        assert ImageStat.Stat(difference).mean[0] < 3, query


def test_more_steps_than_the_model_takes_are_refused():
    query = [("transpose", "rotate90")] * 9  # turns one after another: no two fold
    with pytest.raises(BadTransform, match="at most 8"):
        parse("a.png", query)
