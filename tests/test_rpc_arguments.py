"""Validation of store_image arguments into a typed request."""

import base64
import xmlrpc.client

import pytest

from imagepipe.errors import ClientError
from imagepipe.imaging.geometry import Mode
from imagepipe.paths import PathRules
from imagepipe.rpc_arguments import parse_options, parse_store

IMAGE = base64.b64encode(b"\xff\xd8\xff payload").decode()


def parse(*args):
    return parse_store(PathRules(), 85, IMAGE, *args)


def test_base64_text_with_line_breaks_is_accepted():
    wrapped = base64.encodebytes(b"\xff\xd8\xff" * 40).decode()
    assert parse_store(PathRules(), 85, wrapped, "a.jpg").data == b"\xff\xd8\xff" * 40


def test_binary_value_is_accepted():
    request = parse_store(PathRules(), 85, xmlrpc.client.Binary(b"abc"), "a.jpg")
    assert request.data == b"abc"


@pytest.mark.parametrize("image,message", [("!!notbase64", "Invalid image encoding, should be base64"),
                                           ("", "empty payload"),
                                           (12, "expected base64 text")])
def test_bad_payloads_are_refused(image, message):
    with pytest.raises(ClientError, match=message):
        parse_store(PathRules(), 85, image, "a.jpg")


def test_single_size_makes_one_fit_variant_at_the_path():
    (variant,) = parse("a/b.jpg", None, [500, 400]).variants
    assert variant.path == "a/b.jpg"
    assert variant.spec.box == (500, 400) and variant.spec.mode is Mode.FIT
    assert variant.spec.format.name == "jpg"


def test_size_dict_makes_suffixed_variants():
    request = parse("a/b.jpg", None, {"": [500, 500], "_m": ["250", "250"]})
    assert [v.path for v in request.variants] == ["a/b.jpg", "a/b_m.jpg"]
    assert request.variants[1].spec.box == (250, 250)


def test_composite_wins_over_crop():
    (variant,) = parse("a.png", None, [10, 10], 1, 1).variants
    assert variant.spec.mode is Mode.PAD


def test_crop_mode():
    (variant,) = parse("a.png", None, [10, 10], 0, "1").variants
    assert variant.spec.mode is Mode.CROP


def test_a_key_missing_from_a_format_dict_keeps_the_format():
    request = parse("a.jpg", {"": "png"}, {"": [1, 1], "_s": [2, 2]})
    assert [v.path for v in request.variants] == ["a.png", "a_s.jpg"]


def test_a_format_dict_key_that_size_lacks_is_refused():
    with pytest.raises(ClientError, match="format: key '_x' is not a key of size"):
        parse("a.jpg", {"_x": "png"}, {"": [1, 1]})


@pytest.mark.parametrize("composite,crop", [(1, 0), (0, 1)])
def test_composite_and_crop_need_a_size(composite, crop):
    with pytest.raises(ClientError, match="Composite and crop options require a size"):
        parse("a.jpg", None, None, composite, crop)


def test_dict_options_without_a_size_dict_are_refused():
    with pytest.raises(ClientError, match="needs a dict of sizes"):
        parse("a.jpg", None, [10, 10], {"": 1})


@pytest.mark.parametrize("size,message", [
    ([0, 10], "out of range"), ([10], "should be a list with two elements"),
    (["a", 1], "whole number"), ([True, 1], "whole number"), ([70000, 1], "out of range"),
    ("10x10", r"Invalid dimension specification"),
])
def test_bad_sizes_are_refused(size, message):
    with pytest.raises(ClientError, match=message):
        parse("a.jpg", None, size)


def test_unknown_format_is_refused():
    with pytest.raises(ClientError, match="unsupported format 'svg'"):
        parse("a.jpg", "svg")


@pytest.mark.parametrize("fmt", ["png/../../x", "../png", "p ng"])
def test_a_format_cannot_smuggle_a_path(fmt):
    with pytest.raises(ClientError, match="format"):
        parse("a.jpg", fmt)


def test_two_variants_writing_the_same_file_are_refused():
    with pytest.raises(ClientError, match="would both write"):
        parse("a", {"": "png", ".png": ""}, {"": [1, 1], ".png": [2, 2]})


def test_nothing_given_means_verbatim():
    (variant,) = parse("a.jpg").variants
    assert variant.spec.verbatim and variant.spec.box is None


def test_options_are_typed_and_defaulted():
    options = parse_options({"quality": "70", "progressive": 1, "background": "#FFF"}, 85)
    assert (options.quality, options.progressive, options.strip) == (70, True, True)
    assert options.background == "#fff" and options.filter == "lanczos"


@pytest.mark.parametrize("options,message", [
    ({"quality": 0}, "options.quality"), ({"quality": 101}, "options.quality"),
    ({"background": "url(http://x)"}, "options.background"),
    ({"filter": "evil"}, "options.filter"), ({"colour": 1}, "unknown option 'colour'"),
    ("fast", "expected a struct"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ClientError, match=message):
        parse_options(options, 85)
