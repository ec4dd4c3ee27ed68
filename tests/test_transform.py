"""The typed transform model and its canonical form."""

import pytest

from imagepipe.imaging.transform import BadTransform, Transform


def test_the_default_transform_is_the_original():
    assert Transform().canonical() == "original"


def test_canonical_lists_only_what_differs_in_a_fixed_order():
    transform = Transform(quality=80, width=300, mode="fill", height=200)
    assert transform.canonical() == "width:300/height:200/mode:fill/quality:80"


def test_equal_transforms_have_equal_canonical_forms():
    one = Transform(width=100, height=100, mode="fill", format="webp")
    two = Transform(format="webp", mode="fill", height=100, width=100)
    assert one == two and one.canonical() == two.canonical()


def test_tuples_and_flags_are_written_compactly():
    transform = Transform(crop=(0, 0.25, 0.5, 1.0), trim=True, enlarge=True)
    assert transform.canonical() == "enlarge:1/crop:0,0.25,0.5,1/trim:1"


def test_focus_gravity_needs_a_point():
    assert Transform(gravity="focus", focus=(0.3, 0.7)).canonical() == \
        "gravity:focus/focus:0.3,0.7"
    with pytest.raises(BadTransform, match="focal point"):
        Transform(gravity="focus")
    with pytest.raises(BadTransform, match="focal point"):
        Transform(focus=(0.5, 0.5))


@pytest.mark.parametrize("kwargs,message", [
    ({"width": 0}, "width: expected a whole number"),
    ({"height": 65536}, "height: expected a whole number 1..65535"),
    ({"width": True}, "width: expected a whole number"),
    ({"width": 1.5}, "width: expected a whole number"),
    ({"mode": "stretch"}, "mode: expected one of"),
    ({"mode": "fill", "width": 10}, "mode fill: needs both width and height"),
    ({"gravity": "up"}, "gravity: expected one of"),
    ({"crop": (0.5, 0, 0.5, 1)}, "crop: the box is empty"),
    ({"crop": (0, 0, 1.5, 1)}, "crop: expected fractions 0..1"),
    ({"crop": (0, 0, 1)}, "crop: expected 4 numbers"),
    ({"rotate": 45}, "rotate: expected 0, 90, 180 or 270"),
    ({"flip": "x"}, "flip: expected h or v"),
    ({"format": "bmp"}, "format: expected one of"),
    ({"quality": 0}, "quality: expected a whole number 1..100"),
    ({"quality": 101}, "quality: expected a whole number 1..100"),
])
def test_impossible_transforms_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(BadTransform, match=message):
        Transform(**kwargs)
