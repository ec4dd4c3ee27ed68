"""Magic-byte sniffing and header sizes, on a real photo and on made files."""

import io

import pytest
from PIL import Image

from support.samples import (PHOTO, animated_gif, jpeg_declaring, logo_png, many_frames_gif, photo,
                             picture, picture_png, png_bomb, sample)
from imagepipe.imaging.formats import (by_name, declared_frames, declared_size, jpeg_scan_floor,
                                       metadata_bytes, sniff)


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


# Costs read from the bytes alone, before any decoder runs.

PNG = by_name("png")


def test_png_metadata_is_counted_inflated_and_never_past_the_limit():
    assert metadata_bytes(PNG, png_bomb(b"zTXt"), 1000) == 1001
    assert metadata_bytes(PNG, png_bomb(b"iCCP", 2 << 20), 4 << 20) == 2 << 20
    assert metadata_bytes(PNG, png_bomb(b"iTXt", 2 << 20), 4 << 20) == 2 << 20


def test_a_plain_png_and_other_formats_have_no_metadata_to_inflate():
    assert metadata_bytes(PNG, picture_png(10, 10), 1000) == 0
    assert metadata_bytes(by_name("jpg"), sample(PHOTO), 1000) == 0


def test_gif_frames_are_counted_from_the_blocks_as_a_decoder_sees_them():
    for data in (animated_gif(), animated_gif(46, 350, 197), many_frames_gif(30)):
        assert declared_frames(by_name("gif"), data, 10_000) == Image.open(
            io.BytesIO(data)).n_frames
    assert declared_frames(by_name("gif"), many_frames_gif(5000), 500) == 501
    assert declared_frames(PNG, picture_png(4, 4), 500) is None


def test_a_complete_jpeg_has_far_more_scan_data_than_its_floor():
    for data in (sample(PHOTO), photo(5312, 2988, quality=85, progressive=True,
                                      subsampling="4:2:0")):
        assert 0 < jpeg_scan_floor(data) * 10 < len(data)


def test_the_scan_floor_is_one_bit_per_block_of_every_component():
    # 7000x7000 at 4:2:0: 875 x 875 luma blocks and 438 x 438 per chroma plane.
    assert jpeg_scan_floor(jpeg_declaring(7000, 7000)) == (875 * 875 + 2 * 438 * 438) // 8
