"""phizer's URL grammar: size codes, per-mille crops and the name."""

import pytest

from imagepipe.web.dialects import NotAllowed
from imagepipe.web.dialects.phizer import PhizerSettings, parse
from imagepipe.imaging.transform import BadTransform, Transform

SETTINGS = PhizerSettings(sizes={
    "sq": (100, 100, "square"),
    "max": (800, 600, "max"),
    "por": (300, 400, "portrait"),
    "land": (640, 480, "landscape"),
})


@pytest.mark.parametrize("path,source,transform", [
    ("/sq/cat.jpg", "cat.jpg", Transform(width=100, height=100, mode="fill")),
    ("sq/cat.jpg", "cat.jpg", Transform(width=100, height=100, mode="fill")),
    ("/max/cat.jpg", "cat.jpg", Transform(width=800, height=600, mode="fit")),
    ("/por/cat.jpg", "cat.jpg", Transform(height=400)),
    ("/land/cat.jpg", "cat.jpg", Transform(width=640)),
    ("/max/a/b/cat.png", "a/b/cat.png", Transform(width=800, height=600)),
    ("/sq/0x0/500x1000/cat.jpg", "cat.jpg",
     Transform(width=100, height=100, mode="fill", crop=(0, 0, 0.5, 1))),
    ("/max/250x100/750x900/a/cat.jpg", "a/cat.jpg",
     Transform(width=800, height=600, crop=(0.25, 0.1, 0.75, 0.9))),
    ("/land/0x0/1000x1000/cat.jpg", "cat.jpg", Transform(width=640, crop=(0, 0, 1, 1))),
    ("/por/999x0/1000x1/cat.jpg", "cat.jpg", Transform(height=400, crop=(0.999, 0, 1, 0.001))),
    ("/sq/010x020/0500x0600/cat.jpg", "cat.jpg",
     Transform(width=100, height=100, mode="fill", crop=(0.01, 0.02, 0.5, 0.6))),
    ("/sq/10x20/cat.jpg", "10x20/cat.jpg", Transform(width=100, height=100, mode="fill")),
    ("/sq/10x20/dir/30x40/cat.jpg", "10x20/dir/30x40/cat.jpg",
     Transform(width=100, height=100, mode="fill")),
])
def test_each_form_gives_its_transform(path, source, transform):
    request = parse(path, settings=SETTINGS)
    assert request.source == source
    assert request.transform == transform


def test_a_zero_coordinate_keeps_the_crop():
    assert parse("/por/0x0/1000x500/cat.jpg", settings=SETTINGS).transform.crop == (0, 0, 1, 0.5)


def test_an_empty_query_is_accepted():
    assert parse("/por/cat.jpg", [], settings=SETTINGS).source == "cat.jpg"


@pytest.mark.parametrize("path", ["/xx/cat.jpg", "/SQ/cat.jpg", "/cat.jpg"])
def test_an_unknown_size_code_is_not_allowed(path):
    code = path.split("/")[1]
    with pytest.raises(NotAllowed, match=f"unknown size code '{code}'"):
        parse(path, settings=SETTINGS)


def test_no_size_codes_configured_refuses_every_code():
    with pytest.raises(NotAllowed, match="unknown size code 'sq'"):
        parse("/sq/cat.jpg")


@pytest.mark.parametrize("path,message", [
    ("//cat.jpg", "size code: missing"),
    ("", "size code: missing"),
    ("/sq", "no image name after the size code"),
    ("/sq/", "no image name after the size code"),
    ("/sq/0x0/10x10", "no image name after the crop points"),
    ("/sq/0x0/1001x500/cat.jpg", "bottom-right point '1001x500'"),
    ("/sq/0x1001/500x500/cat.jpg", "top-left point '0x1001'"),
    ("/sq/99999999x0/500x500/cat.jpg", "top-left point '99999999x0'"),
    ("/sq/-1x0/500x500/cat.jpg", "top-left point '-1x0': expected XxY with whole per-mille"),
    ("/sq/0x0/+5x500/cat.jpg", "bottom-right point"),
    ("/sq/0.5x0/500x500/cat.jpg", "top-left point '0.5x0'"),
    ("/sq/500x500/500x600/cat.jpg", "top-left point 500x500 must be above and left"),
    ("/sq/0x600/500x600/cat.jpg", "must be above and left of the bottom-right point 500x600"),
    ("/sq/600x600/500x700/cat.jpg", "top-left point 600x600"),
    ("/sq/../cat.jpg", "'..' components are not allowed"),
    ("/sq/a/../../cat.jpg", "'..' components are not allowed"),
    ("/sq/./cat.jpg", "'.' components are not allowed"),
    ("/sq/.hidden.jpg", "components starting with '.' are not allowed"),
    ("/sq/a/.git/config", "components starting with '.' are not allowed"),
    ("/sq/a//cat.jpg", "empty path components"),
    ("/sq/0x0/10x10/../cat.jpg", "'..' components are not allowed"),
    ("/sq/a\\b.jpg", "backslashes are not allowed"),
    ("/sq/a\x00b.jpg", "control characters are not allowed"),
])
def test_malformed_paths_are_bad_transforms_naming_the_problem(path, message):
    with pytest.raises(BadTransform) as caught:
        parse(path, settings=SETTINGS)
    assert message in str(caught.value)


def test_query_parameters_are_refused():
    with pytest.raises(BadTransform, match="phizer URLs take no query parameters"):
        parse("/sq/cat.jpg", [("w", "10")], settings=SETTINGS)


@pytest.mark.parametrize("sizes,message", [
    ({"a": (100, 100)}, "size code 'a': expected (width, height, constraint)"),
    ({"a": [100, 100, "max"]}, "size code 'a': expected"),
    ({"a": (0, 100, "max")}, "size code 'a': width must be a whole number"),
    ({"a": (100, 70000, "max")}, "size code 'a': height must be a whole number"),
    ({"a": (100, "100", "max")}, "height must be a whole number"),
    ({"a": (100, 100, "crop")}, "constraint must be one of square, max, portrait, landscape"),
])
def test_malformed_size_codes_are_refused_at_startup(sizes, message):
    with pytest.raises(ValueError) as caught:
        PhizerSettings(sizes=sizes)
    assert message in str(caught.value)
