"""Resize geometry matches the original ImageMagick command lines."""

import pytest

from imagepipe.imaging.geometry import Box, Mode, base_for, oriented, plan


def test_fit_keeps_aspect_inside_the_box():
    assert plan((6028, 3391), (1024, 1024), Mode.FIT).output == (1024, 576)
    assert plan((3391, 6028), (1024, 1024), Mode.FIT).output == (576, 1024)


def test_fit_never_enlarges():
    assert plan((100, 50), (1024, 1024), Mode.FIT).output == (100, 50)


def test_fit_rounds_like_imagemagick():
    # 333 * 100 / 1000 = 33.3 -> 33; 335 * 0.1 = 33.5 -> 34 (floor(x + 0.5))
    assert plan((1000, 333), (100, 100), Mode.FIT).output == (100, 33)
    assert plan((1000, 335), (100, 100), Mode.FIT).output == (100, 34)


def test_crop_covers_then_centre_crops_to_exactly_the_box():
    result = plan((6028, 3391), (50, 50), Mode.CROP)
    assert result.resize == (89, 50)
    assert result.crop == Box(19, 0, 50, 50)
    assert result.output == (50, 50)


def test_crop_enlarges_a_small_source():
    result = plan((40, 20), (100, 100), Mode.CROP)
    assert result.resize == (200, 100) and result.output == (100, 100)


def test_pad_centres_the_fitted_image_on_the_canvas():
    result = plan((400, 200), (100, 100), Mode.PAD)
    assert result.resize == (100, 50)
    assert result.canvas == Box(0, 25, 100, 100)
    assert result.output == (100, 100)


def test_pad_does_not_enlarge_but_still_gives_the_box():
    result = plan((30, 10), (100, 100), Mode.PAD)
    assert result.resize == (30, 10) and result.canvas == Box(35, 45, 100, 100)


def test_no_box_keeps_the_source_size():
    assert plan((640, 480), None, Mode.FIT).output == (640, 480)


@pytest.mark.parametrize("orientation,expected", [(1, (60, 40)), (3, (60, 40)),
                                                  (6, (40, 60)), (8, (40, 60))])
def test_orientation_swaps_sides_for_rotations(orientation, expected):
    assert oriented((60, 40), orientation) == expected


def test_cascade_uses_a_base_at_least_twice_the_target():
    bases = [(1024, 576), (1507, 848)]
    assert base_for((250, 141), bases) == 0
    assert base_for((600, 338), bases) == 1  # 1024 is < 2 x 600: from the decoded source


def test_cascade_picks_the_smallest_qualifying_base():
    bases = [(250, 141), (1024, 576), (6028, 3391)]
    assert base_for((89, 50), bases) == 0
    assert base_for((200, 100), bases) == 1
