"""Magic-byte sniffing and header sizes, on real files."""

import pytest

from conftest import corpus, picture
from imagepipe.imaging.formats import by_name, declared_size, sniff


@pytest.mark.parametrize("name,fmt,size", [
    ("Kleiber_by_Lukas_Baubkus.jpg", "jpg", (6028, 3391)),
    ("seeding_by_Clements_Engelhardt.jpg", "jpg", (5312, 2988)),
    ("emerald_logo_alpha.png", "png", (1689, 1800)),
    ("pillow_iss634_anim.gif", "gif", (245, 245)),
])
def test_corpus_files_are_sniffed_with_their_declared_size(name, fmt, size):
    data = corpus(name)
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
