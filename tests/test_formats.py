"""Magic-byte sniffing and header sizes, on a real photo and on made files."""

import pytest

from conftest import picture
from samples import PHOTO, animated_gif, logo_png, photo, sample
from imagepipe.imaging.formats import by_name, declared_size, sniff


@pytest.mark.parametrize("data,fmt,size", [
    (sample(PHOTO), "jpg", (1600, 900)),
    (photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0"), "jpg", (5312, 2988)),
    (logo_png(), "png", (1689, 1800)),
    (animated_gif(42, 245, 245), "gif", (245, 245)),
], ids=["photo", "progressive", "alpha-png", "animated-gif"])
def test_files_are_sniffed_with_their_declared_size(data, fmt, size):
    assert sniff(data).name == fmt
    assert declared_size(sniff(data), data) == size


@pytest.mark.parametrize("options", [{}, {"lossless": True}])
def test_webp_sizes_from_lossy_and_lossless_headers(options):
    data = picture(123, 45, fmt="WEBP", **options)
    assert sniff(data).name == "webp" and declared_size(sniff(data), data) == (123, 45)


def test_avif_is_sniffed_from_its_ftyp_brand():
    assert sniff(picture(16, 16, fmt="AVIF")).name == "avif"


@pytest.mark.parametrize("data", [b"", b"GIF8", b"<svg", b"%PDF-1.4", b"\x00" * 64,
                                  b"RIFF\x00\x00\x00\x00WAVE", b"BM\x00\x00"])
def test_anything_else_is_not_recognised(data):
    assert sniff(data) is None


def test_format_names_and_aliases():
    assert by_name("JPEG").name == "jpg" and by_name("heif").name == "heic"
    assert by_name("svg") is None and by_name(None) is None
