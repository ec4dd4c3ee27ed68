"""imagepipe's own URL grammar."""

import pytest

from imagepipe.web.dialects import NotAllowed
from imagepipe.web.dialects.native import NativeSettings, parse
from imagepipe.imaging.transform import BadTransform, Transform

PRESETS = NativeSettings(presets={"thumb": ("w:150", "h:150", "m:fill", "q:80")})


def test_options_in_any_order_then_the_source():
    one = parse("w:300/h:200/m:fill/g:ne/f:webp/q:80/photos/cat.jpg")
    two = parse("q:80/format:webp/gravity:northeast/mode:fill/height:200/width:300/photos/cat.jpg")
    assert one == two
    assert one.source == "photos/cat.jpg"
    assert one.transform == Transform(width=300, height=200, mode="fill", gravity="northeast",
                                      format="webp", quality=80)


def test_no_options_is_the_original():
    assert parse("cat.jpg").transform.canonical() == "original"


@pytest.mark.parametrize("size,expected", [("300x200", (300, 200)), ("300x", (300, None)),
                                           ("x200", (None, 200))])
def test_size_forms(size, expected):
    transform = parse(f"s:{size}/a.jpg").transform
    assert (transform.width, transform.height) == expected


def test_every_other_option():
    transform = parse("w:10/h:10/m:pad/e:1/t:1/p:1/fp:0.25,0.75/c:0,0,0.5,1/r:90/fl:h/"
                      "bg:FFF/fi:mitchell/a/b.png").transform
    assert transform == Transform(width=10, height=10, mode="pad", enlarge=True, trim=True,
                                  progressive=True, gravity="focus", focus=(0.25, 0.75),
                                  crop=(0.0, 0.0, 0.5, 1.0), rotate=90, flip="h",
                                  background="#fff", filter="mitchell")


def test_a_dash_ends_the_options():
    assert parse("w:10/-/w:odd/name.jpg").source == "w:odd/name.jpg"


def test_presets_expand_and_combine():
    request = parse("preset:thumb/f:webp/a.jpg", settings=PRESETS)
    assert request.transform == Transform(width=150, height=150, mode="fill", quality=80,
                                          format="webp")


def test_presets_only_mode_refuses_anything_else():
    strict = NativeSettings(presets=PRESETS.presets, presets_only=True)
    assert parse("pr:thumb/a.jpg", settings=strict).transform.width == 150
    with pytest.raises(NotAllowed, match="only presets"):
        parse("w:10/a.jpg", settings=strict)
    with pytest.raises(NotAllowed, match="only presets"):
        parse("a.jpg", settings=strict)


@pytest.mark.parametrize("path,error,message", [
    ("w:10", BadTransform, "no source image"),
    ("w:10/w:20/a.jpg", BadTransform, "width: given twice"),
    ("s:10x10/w:5/a.jpg", BadTransform, "width: given twice"),
    ("w:abc/a.jpg", BadTransform, "width: expected a whole number"),
    ("w:0/a.jpg", BadTransform, "width: expected a whole number"),
    ("w:99999999/a.jpg", BadTransform, "width: expected a whole number"),
    ("s:x/a.jpg", BadTransform, "size: expected WxH"),
    ("m:stretch/a.jpg", BadTransform, "mode: expected one of"),
    ("m:fill/w:10/a.jpg", BadTransform, "mode fill: needs both width and height"),
    ("e:yes/a.jpg", BadTransform, "enlarge: expected 0 or 1"),
    ("g:up/a.jpg", BadTransform, "gravity: expected one of"),
    ("fp:0.5/a.jpg", BadTransform, "focus: expected 2 numbers"),
    ("fp:2,0/a.jpg", BadTransform, "focus: expected fractions"),
    ("c:0,0,x,1/a.jpg", BadTransform, "crop: expected numbers"),
    ("c:0.5,0,0.5,1/a.jpg", BadTransform, "crop: the box is empty"),
    ("r:45/a.jpg", BadTransform, "rotate: expected 0, 90, 180 or 270"),
    ("fl:x/a.jpg", BadTransform, "flip: expected h or v"),
    ("f:bmp/a.jpg", BadTransform, "format: expected one of"),
    ("q:101/a.jpg", BadTransform, "quality: expected a whole number 1..100"),
    ("bg:url(x)/a.jpg", BadTransform, "background: expected RGB or RRGGBB"),
    ("fi:evil/a.jpg", BadTransform, "filter: unknown filter"),
    ("pr:nope/a.jpg", NotAllowed, "unknown preset 'nope'"),
    ("w:10/../etc/passwd", BadTransform, "'..' components are not allowed"),
    ("w:10/.hidden/a.jpg", BadTransform, "components starting with '.'"),
    ("w:10/a//b.jpg", BadTransform, "empty path components"),
    ("w:10//a.jpg", BadTransform, "absolute paths are not allowed"),
])
def test_malformed_urls_are_refused_with_a_reason(path, error, message):
    with pytest.raises(error, match=message):
        parse(path, settings=PRESETS)


@pytest.mark.parametrize("path, expected", [
    ("sc:0.5/a.jpg", Transform(scale=0.5)),
    ("scale:2/a.jpg", Transform(scale=2.0)),
    ("w:100/sh:0/e:1/a.jpg", Transform(width=100, enlarge=True, shrink=False)),
    ("cb:10,20,110,220/w:50/a.jpg", Transform(crop_pixels=(10, 20, 110, 220), width=50)),
])
def test_scale_shrink_and_pixel_crop_boxes(path, expected):
    assert parse(path).transform == expected


@pytest.mark.parametrize("path, message", [
    ("sc:0/a.jpg", "scale: expected a number above 0"),
    ("sc:11/a.jpg", "scale: expected a number above 0 up to 10"),
    ("sc:-1/a.jpg", "scale: expected a number such as 0.5"),
    ("sc:nan/a.jpg", "scale: expected a number such as 0.5"),
    ("sc:0.5/w:10/a.jpg", "scale: excludes a width"),
    ("cb:1,2,3/a.jpg", "cropbox: expected left,top,right,bottom"),
    ("cb:5,5,5,9/a.jpg", "crop: the box is empty"),
    ("cb:0,0,9,9/c:0,0,1,1/a.jpg", "crop: a box in fractions or in pixels, not both"),
    ("sh:2/a.jpg", "shrink: expected 0 or 1"),
])
def test_bad_scale_shrink_and_pixel_boxes(path, message):
    with pytest.raises(BadTransform, match=message):
        parse(path)
