"""The OpenRoss dialect: ``W/H/MODE/path.ext`` into a Transform, and its cache names."""

import pytest

from imagepipe.paths import PathRules
from imagepipe.web.dialects import NotAllowed, Request
from imagepipe.web.dialects.openross import OpenRossSettings, cache_name, parse
from imagepipe.imaging.transform import BadTransform, Transform

JPEG_90 = dict(format="jpg", quality=90)


@pytest.mark.parametrize("path, expected", [
    ("200/250/resize/x/y/photo.jpg",
     Transform(width=200, height=250, mode="fit", enlarge=True, **JPEG_90)),
    ("200/250/resizecomp/x/y/photo.jpg",
     Transform(width=200, height=250, mode="pad", background="white", enlarge=True, **JPEG_90)),
    ("200/250/crop/x/y/photo.jpg",
     Transform(width=200, height=250, mode="fill", enlarge=True, **JPEG_90)),
    ("200/250/trimresize/x/y/photo.jpg",
     Transform(width=200, height=250, mode="pad", background="white", enlarge=False,
               trim=True, **JPEG_90)),
])
def test_each_mode_gives_its_transform(path, expected):
    assert parse(path) == Request(source="x/y/photo.jpg", transform=expected)


@pytest.mark.parametrize("mode", ["resize", "resizecomp", "crop", "trimresize"])
def test_output_is_always_jpeg_90_centred_with_the_default_lanczos_filter(mode):
    transform = parse(f"72/72/{mode}/a.png").transform
    assert (transform.format, transform.quality) == ("jpg", 90)
    assert transform.gravity == "center"
    assert transform.filter is None  # the engines' default, Lanczos


def test_the_source_keeps_every_component_after_the_mode():
    assert parse("10/20/crop/a/b/c/d.jpeg").source == "a/b/c/d.jpeg"


def test_a_source_without_directory_is_fine():
    assert parse("10/20/crop/d.jpg").source == "d.jpg"


def test_the_source_is_nfc_normalised():
    assert parse("10/20/crop/z\u0307o\u0301\u0142w.jpg").source == "żółw.jpg"


def test_the_source_follows_the_node_path_rules():
    settings = OpenRossSettings(path_rules=PathRules(transliterate=True))
    assert parse("10/20/crop/żółw.jpg", settings=settings).source == "zolw.jpg"


def test_the_query_is_ignored():
    assert parse("10/20/crop/a.jpg", {b"v": [b"2"]}) == parse("10/20/crop/a.jpg")


def test_the_largest_default_size_is_2000x2000():
    assert parse("2000/2000/resize/a.jpg").transform.width == 2000


def test_a_size_of_one_pixel_is_allowed():
    assert parse("1/1/crop/a.jpg").transform.height == 1


def test_the_same_request_gives_the_same_canonical_text():
    assert (parse("200/250/crop/a.jpg").transform.canonical()
            == parse("200/250/crop/b/c.png").transform.canonical())


def test_modes_give_different_canonical_texts():
    texts = {parse(f"200/250/{mode}/a.jpg").transform.canonical()
             for mode in ("resize", "resizecomp", "crop", "trimresize")}
    assert len(texts) == 4


@pytest.mark.parametrize("path, message", [
    ("", "expected W/H/MODE/path"),
    ("200", "expected W/H/MODE/path"),
    ("200/250", "expected W/H/MODE/path"),
    ("200/250/crop", "expected W/H/MODE/path"),
    ("abc/250/crop/a.jpg", "width: expected a whole number, got 'abc'"),
    ("200/abc/crop/a.jpg", "height: expected a whole number, got 'abc'"),
    ("/200/250/crop/a.jpg", "width: expected a whole number, got ''"),
    ("200//crop/a.jpg", "height: expected a whole number, got ''"),
    ("-200/250/crop/a.jpg", "width: expected a whole number, got '-200'"),
    ("200/-250/crop/a.jpg", "height: expected a whole number, got '-250'"),
    ("+200/250/crop/a.jpg", "width: expected a whole number, got '+200'"),
    ("2.5/250/crop/a.jpg", "width: expected a whole number, got '2.5'"),
    ("200/1e3/crop/a.jpg", "height: expected a whole number, got '1e3'"),
    (" 200/250/crop/a.jpg", "width: expected a whole number, got ' 200'"),
    ("٢٠٠/250/crop/a.jpg", "width: expected a whole number"),  # Arabic-Indic digits
    ("0/250/crop/a.jpg", "width: expected a whole number from 1"),
    ("200/0/crop/a.jpg", "height: expected a whole number from 1"),
    ("0200/250/crop/a.jpg", "without leading zeros, got '0200'"),
    ("2001/250/crop/a.jpg", "width 2001 is larger than MAX_SIZE 2000x2000"),
    ("200/2001/crop/a.jpg", "height 2001 is larger than MAX_SIZE 2000x2000"),
    ("99999999999999999999/250/crop/a.jpg", "width 999999999... is larger than MAX_SIZE"),
    ("200/" + "9" * 5000 + "/crop/a.jpg", "height 999999999... is larger than MAX_SIZE"),
    ("200/250/zoom/a.jpg", "mode: expected one of resize, resizecomp, crop, trimresize, "
                           "got 'zoom'"),
    ("200/250/Crop/a.jpg", "mode: expected one of"),
    ("200/250//a.jpg", "mode: expected one of"),
    ("200/250/crop/", "path: path is empty"),
    ("200/250/crop/../secret.jpg", "'..' components are not allowed"),
    ("200/250/crop/a/../../secret.jpg", "'..' components are not allowed"),
    ("200/250/crop/./a.jpg", "'.' components are not allowed"),
    ("200/250/crop/.hidden.jpg", "components starting with '.' are not allowed"),
    ("200/250/crop/a/.git/config", "components starting with '.' are not allowed"),
    ("200/250/crop//a.jpg", "absolute paths are not allowed"),
    ("200/250/crop/a//b.jpg", "empty path components are not allowed"),
    ("200/250/crop/a/", "empty path components are not allowed"),
    ("200/250/crop/a\\b.jpg", "backslashes are not allowed"),
    ("200/250/crop/a\x00b.jpg", "control characters are not allowed"),
    ("200/250/crop/" + "x" * 256 + ".jpg", "longer than 255 bytes"),
])
def test_malformed_paths_are_refused_naming_the_problem(path, message):
    with pytest.raises(BadTransform) as error:
        parse(path)
    assert message in str(error.value)


def test_a_path_problem_does_not_echo_a_server_path():
    with pytest.raises(BadTransform) as error:
        parse("200/250/crop/../x.jpg")
    assert str(error.value).startswith("path: ")


def test_a_huge_width_message_stays_short():
    with pytest.raises(BadTransform) as error:
        parse("9" * 5000 + "/250/crop/a.jpg")
    assert len(str(error.value)) < 100


def test_a_malformed_path_is_refused_even_when_the_mode_is_disabled():
    settings = OpenRossSettings(modes=frozenset({"resize"}))
    with pytest.raises(BadTransform, match="'..' components"):
        parse("200/250/crop/../a.jpg", settings=settings)


# Size whitelist (OpenRoss's USE_WHITELIST).

WHITELIST = OpenRossSettings(whitelist=frozenset({(72, 72), (200, 250), (1024, 768)}))


@pytest.mark.parametrize("width, height", [(72, 72), (200, 250), (1024, 768)])
def test_whitelisted_sizes_are_served(width, height):
    transform = parse(f"{width}/{height}/crop/a.jpg", settings=WHITELIST).transform
    assert (transform.width, transform.height) == (width, height)


@pytest.mark.parametrize("path, message", [
    ("200/300/crop/a.jpg", "200x300 is not on the size whitelist"),
    ("250/200/crop/a.jpg", "250x200 is not on the size whitelist"),  # pairs, not sides
    ("768/1024/resize/a.jpg", "768x1024 is not on the size whitelist"),
])
def test_sizes_off_the_whitelist_are_not_allowed(path, message):
    with pytest.raises(NotAllowed) as error:
        parse(path, settings=WHITELIST)
    assert str(error.value) == message


def test_an_empty_whitelist_serves_nothing():
    with pytest.raises(NotAllowed, match="72x72 is not on the size whitelist"):
        parse("72/72/crop/a.jpg", settings=OpenRossSettings(whitelist=frozenset()))


def test_max_size_is_checked_before_the_whitelist():
    settings = OpenRossSettings(whitelist=frozenset({(3000, 3000)}))
    with pytest.raises(BadTransform, match="width 3000 is larger than MAX_SIZE 2000x2000"):
        parse("3000/3000/crop/a.jpg", settings=settings)


# MAX_SIZE and enabled modes.

def test_max_size_is_configurable_per_side():
    settings = OpenRossSettings(max_size=(800, 600))
    assert parse("800/600/crop/a.jpg", settings=settings).transform.width == 800
    with pytest.raises(BadTransform, match="width 801 is larger than MAX_SIZE 800x600"):
        parse("801/600/crop/a.jpg", settings=settings)
    with pytest.raises(BadTransform, match="height 601 is larger than MAX_SIZE 800x600"):
        parse("800/601/crop/a.jpg", settings=settings)


@pytest.mark.parametrize("mode", ["resize", "resizecomp", "trimresize"])
def test_disabled_modes_are_not_allowed(mode):
    settings = OpenRossSettings(modes=frozenset({"crop"}))
    with pytest.raises(NotAllowed) as error:
        parse(f"200/250/{mode}/a.jpg", settings=settings)
    assert str(error.value) == f"mode {mode} is not enabled here (enabled: crop)"


def test_an_enabled_mode_is_served():
    settings = OpenRossSettings(modes=frozenset({"crop"}))
    assert parse("200/250/crop/a.jpg", settings=settings).transform.mode == "fill"


def test_an_unknown_mode_is_a_bad_request_even_with_modes_restricted():
    settings = OpenRossSettings(modes=frozenset({"crop"}))
    with pytest.raises(BadTransform, match="mode: expected one of"):
        parse("200/250/zoom/a.jpg", settings=settings)


@pytest.mark.parametrize("arguments, message", [
    (dict(max_size=(0, 2000)), "max_size"),
    (dict(max_size=(2000,)), "max_size"),
    (dict(max_size=(70000, 2000)), "max_size"),
    (dict(max_size=[2000, 2000]), "max_size"),
    (dict(modes=frozenset({"zoom"})), "modes"),
    (dict(modes={"crop"}), "modes"),
    (dict(whitelist={(72, 72)}), "whitelist"),
    (dict(whitelist=frozenset({"72x72"})), "whitelist"),
])
def test_bad_settings_are_refused_naming_the_setting(arguments, message):
    with pytest.raises(ValueError, match=message):
        OpenRossSettings(**arguments)


# Cache file names, as nginx looks them up.

@pytest.mark.parametrize("path, expected", [
    ("200/250/crop/x/y/photo.jpg", "x/y/photo_200x250_crop.jpg"),
    ("72/72/resize/photo.png", "photo_72x72_resize.png"),
    ("1024/768/resizecomp/a/b.c.jpeg", "a/b.c_1024x768_resizecomp.jpeg"),
    ("10/20/trimresize/a/Photo.JPG", "a/Photo_10x20_trimresize.JPG"),
    ("10/20/crop/a/photo", "a/photo_10x20_crop"),
])
def test_cache_name_is_path_size_and_mode(path, expected):
    assert cache_name(path) == expected


@pytest.mark.parametrize("path, message", [
    ("200/250/crop", "expected W/H/MODE/path"),
    ("abc/250/crop/a.jpg", "width: expected a whole number, got 'abc'"),
    ("200/250/zoom/a.jpg", "mode: expected one of"),
    ("3000/250/crop/a.jpg", "width 3000 is larger than MAX_SIZE"),
    ("200/250/crop/../a.jpg", "'..' components are not allowed"),
    ("200/250/crop/.a.jpg", "components starting with '.'"),
    ("200/250/crop/" + "x" * 250 + ".jpg", "longer than 255 bytes"),  # only with the suffix
])
def test_cache_name_validates_as_parse_does(path, message):
    with pytest.raises(BadTransform) as error:
        cache_name(path)
    assert message in str(error.value)


def test_cache_name_honours_the_whitelist():
    with pytest.raises(NotAllowed, match="200x300 is not on the size whitelist"):
        cache_name("200/300/crop/a.jpg", settings=WHITELIST)
