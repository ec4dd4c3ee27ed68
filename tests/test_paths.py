"""The path rules: what a client path may be, and how variant paths are built."""

import pytest

from imagepipe.errors import ClientError
from imagepipe.paths import PathRules

RULES = PathRules()


@pytest.mark.parametrize("path", [
    "../x.jpg", "a/../../x.jpg", "a/..", "/etc/x.jpg", "a\x00b.jpg", "a\\b.jpg",
    "a/\x07b.jpg", "a/\nb.jpg", ".hidden.jpg", "a/.b/c.jpg", "a//b.jpg", "a/", "",
    "./a.jpg", "a/" + "x" * 256 + ".jpg", "a\u202eb.jpg",
])
def test_hostile_paths_are_refused(path):
    with pytest.raises(ClientError) as error:
        RULES.clean(path)
    assert str(error.value).startswith("path: ")


def test_a_component_of_255_bytes_is_allowed_and_256_is_not():
    RULES.clean("a/" + "é" * 127 + "x")  # 255 bytes in UTF-8
    with pytest.raises(ClientError, match="255 bytes"):
        RULES.clean("a/" + "é" * 128)


def test_non_string_path_is_refused():
    with pytest.raises(ClientError, match="expected a string"):
        RULES.clean(["a"])


def test_utf8_paths_are_kept_and_nfc_normalised():
    decomposed = "zdje\u0328cia/z\u0307o\u0301\u0142w.jpg"
    assert RULES.clean(decomposed) == "zdjęcia/żółw.jpg"


def test_transliteration_turns_paths_into_ascii():
    assert PathRules(transliterate=True).clean("zdjęcia/żółw.jpg") == "zdjecia/zolw.jpg"


def test_transliteration_never_invents_a_directory_level():
    # Unidecode spells ½ as " 1/2" and ⁄ as "/": neither may split a component.
    assert PathRules(transliterate=True).clean("a/x½.jpg") == "a/x 1_2.jpg"
    assert PathRules(transliterate=True).clean("a/b⁄c.jpg") == "a/b_c.jpg"


def test_suffix_goes_before_the_extension_and_format_replaces_it():
    assert RULES.variant("x/y/image.jpg", "_medium", None) == "x/y/image_medium.jpg"
    assert RULES.variant("x/y/image.jpg", "_s", "png") == "x/y/image_s.png"
    assert RULES.variant("x/image", "_s", None) == "x/image_s"
    assert RULES.variant("x/image", "", "webp") == "x/image.webp"


@pytest.mark.parametrize("suffix", ["/../../../etc/evil", "_a/b", "\\x", "\x00"])
def test_a_suffix_cannot_smuggle_a_path(suffix):
    with pytest.raises(ClientError):
        RULES.variant("x/image.jpg", suffix, None)


def test_the_final_path_is_checked_not_the_input():
    with pytest.raises(ClientError, match="255 bytes"):
        RULES.variant("x/" + "a" * 250 + ".jpg", "_suffix", None)


def test_lists_of_paths_name_the_bad_index():
    with pytest.raises(ClientError, match=r"src_path\[1\]"):
        RULES.clean_many(["ok.jpg", "../bad.jpg"], "src_path")
