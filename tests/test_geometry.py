"""Resize geometry matches the original ImageMagick command lines, and plans transforms."""

import pytest

from imagepipe.imaging.geometry import (Box, Mode, Plan, base_for, crop_box, fitted, oriented,
                                        placed, plan, rotated, transform_plan)
from imagepipe.imaging.transform import Transform


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


# On-the-fly transforms: fitted() by mode, with and without enlarge.

@pytest.mark.parametrize("source,box,enlarge,resize", [
    ((400, 200), (100, 100), False, (100, 50)),
    ((400, 200), (100, 100), True, (100, 50)),
    ((40, 20), (100, 100), False, (40, 20)),
    ((40, 20), (100, 100), True, (100, 50)),
    ((400, 200), (100, None), False, (100, 50)),
    ((400, 200), (None, 50), False, (100, 50)),
    ((40, 20), (100, None), True, (100, 50)),
    ((40, 20), (None, 100), True, (200, 100)),
    ((40, 20), (None, 100), False, (40, 20)),
    ((1000, 333), (100, None), False, (100, 33)),
    ((1000, 335), (100, None), False, (100, 34)),
])
def test_fit_scales_by_the_given_sides(source, box, enlarge, resize):
    assert fitted(source, box, "fit", enlarge) == Plan(resize=resize)


def test_no_box_means_no_resize():
    for mode in ("fit", "fill", "pad", "force"):
        assert fitted((640, 480), (None, None), mode, True) == Plan(resize=(640, 480))


def test_fill_covers_then_crops_to_the_box():
    assert fitted((400, 200), (100, 100), "fill") == Plan((200, 100), crop=Box(50, 0, 100, 100))


def test_fill_enlarges_only_when_allowed():
    assert fitted((40, 20), (100, 100), "fill", enlarge=True) == Plan(
        (200, 100), crop=Box(50, 0, 100, 100))
    assert fitted((40, 20), (100, 100), "fill") == Plan((40, 20))


def test_fill_without_enlarge_crops_what_is_larger_than_the_box():
    # 300x50 into 100x100: the scale would be 2, capped at 1; the width is cut to 100.
    assert fitted((300, 50), (100, 100), "fill") == Plan((300, 50), crop=Box(100, 0, 100, 50))


def test_fill_with_the_exact_aspect_needs_no_crop():
    assert fitted((400, 200), (200, 100), "fill") == Plan((200, 100))


def test_pad_fits_then_places_on_the_canvas():
    assert fitted((400, 200), (100, 100), "pad") == Plan((100, 50), canvas=Box(0, 25, 100, 100))
    assert fitted((40, 20), (100, 100), "pad") == Plan((40, 20), canvas=Box(30, 40, 100, 100))
    assert fitted((40, 20), (100, 100), "pad", enlarge=True) == Plan(
        (100, 50), canvas=Box(0, 25, 100, 100))


def test_pad_to_the_exact_aspect_needs_no_canvas():
    assert fitted((400, 200), (200, 100), "pad") == Plan((200, 100))


@pytest.mark.parametrize("source,enlarge,resize", [
    ((400, 200), False, (100, 150)),
    ((400, 100), False, (100, 100)),  # 150 > 100 without enlarge: the height stays
    ((400, 100), True, (100, 150)),
    ((50, 60), False, (50, 60)),
    ((50, 60), True, (100, 150)),
])
def test_force_sets_each_side(source, enlarge, resize):
    assert fitted(source, (100, 150), "force", enlarge) == Plan(resize)


def test_fill_and_pad_follow_gravity():
    assert fitted((400, 200), (100, 100), "fill", gravity="west").crop == Box(0, 0, 100, 100)
    assert fitted((400, 200), (100, 100), "fill", gravity="east").crop == Box(100, 0, 100, 100)
    assert fitted((200, 400), (100, 100), "fill", gravity="south").crop == Box(0, 100, 100, 100)
    assert fitted((400, 200), (100, 100), "pad", gravity="north").canvas == Box(0, 0, 100, 100)
    assert fitted((400, 200), (100, 100), "pad", gravity="south").canvas == Box(0, 50, 100, 100)


def test_pad_with_a_focal_point_is_centred():
    assert fitted((400, 200), (100, 100), "pad", gravity="focus",
                  focus=(0.0, 0.0)).canvas == Box(0, 25, 100, 100)


def test_fill_centres_the_crop_on_the_focal_point():
    # 300x100 resized, 100 wide cut: 0.6 * 300 - 50 = 130; 0.95 * 300 - 50 = 235 -> 200.
    assert fitted((600, 200), (100, 100), "fill", gravity="focus",
                  focus=(0.6, 0.5)).crop == Box(130, 0, 100, 100)
    assert fitted((600, 200), (100, 100), "fill", gravity="focus",
                  focus=(0.95, 0.5)).crop == Box(200, 0, 100, 100)
    assert fitted((600, 200), (100, 100), "fill", gravity="focus",
                  focus=(0.0, 1.0)).crop == Box(0, 0, 100, 100)


@pytest.mark.parametrize("gravity,offset", [
    ("northwest", (0, 0)), ("north", (15, 0)), ("northeast", (31, 0)),
    ("west", (0, 10)), ("center", (15, 10)), ("east", (31, 10)),
    ("southwest", (0, 21)), ("south", (15, 21)), ("southeast", (31, 21)),
])
def test_gravity_places_at_edges_or_the_floor_of_the_middle(gravity, offset):
    assert placed((50, 30), (19, 9), gravity) == offset


@pytest.mark.parametrize("focus,offset", [((0.5, 0.5), (15, 10)), ((0.0, 0.0), (0, 0)),
                                          ((1.0, 1.0), (31, 21)), ((0.3, 0.8), (5, 19))])
def test_focus_centres_on_the_point_inside_the_outer_box(focus, offset):
    # x: 0.3 * 50 - 9.5 = 5.5 -> 5; y: 0.8 * 30 - 4.5 = 19.5 -> 19 (floored, as the centre)
    assert placed((50, 30), (19, 9), "focus", focus) == offset


def test_crop_box_rounds_fractions_of_the_source():
    assert crop_box((200, 100), (0.25, 0.1, 0.75, 0.9)) == Box(50, 10, 100, 80)
    assert crop_box((99, 99), (0.5, 0.5, 1.0, 1.0)) == Box(50, 50, 49, 49)  # 49.5 -> 50


def test_crop_box_keeps_at_least_one_pixel():
    assert crop_box((100, 100), (0.5, 0.5, 0.501, 0.502)) == Box(50, 50, 1, 1)
    assert crop_box((100, 100), (0.999, 0.0, 1.0, 1.0)) == Box(99, 0, 1, 100)


@pytest.mark.parametrize("degrees,size", [(0, (60, 40)), (90, (40, 60)), (180, (60, 40)),
                                          (270, (40, 60))])
def test_rotation_swaps_sides_for_quarter_turns(degrees, size):
    assert rotated((60, 40), degrees) == size


def test_transform_plan_crops_then_rotates_then_fits():
    result = transform_plan((400, 200), Transform(width=50, crop=(0.0, 0.0, 0.5, 1.0),
                                                  rotate=90))
    # 200x200 region, turned 200x200, fit 50 wide.
    assert result.region == Box(0, 0, 200, 200) and result.trim is None
    assert result.fit == Plan((50, 50)) and result.output == (50, 50)
    turned = transform_plan((400, 200), Transform(width=100, height=100, rotate=270))
    assert turned.fit == Plan((50, 100)) and turned.region is None


def test_transform_plan_fits_the_trimmed_box():
    transform = Transform(width=100, trim=True, crop=(0.5, 0.0, 1.0, 1.0))
    assert transform_plan((400, 200), transform).fit == Plan((100, 100))
    trimmed = transform_plan((400, 200), transform, trim=Box(10, 20, 150, 30))
    assert trimmed.region == Box(200, 0, 200, 200) and trimmed.trim == Box(10, 20, 150, 30)
    assert trimmed.fit == Plan((100, 20))


def test_transform_plan_drops_boxes_that_keep_everything():
    result = transform_plan((400, 200), Transform(crop=(0.0, 0.0, 1.0, 1.0), trim=True),
                            trim=Box(0, 0, 400, 200))
    assert (result.region, result.trim, result.fit) == (None, None, Plan((400, 200)))


def test_transform_plan_places_fill_by_gravity_after_rotation():
    result = transform_plan((200, 400), Transform(width=100, height=100, mode="fill",
                                                  gravity="east", rotate=90))
    assert result.fit == Plan((200, 100), crop=Box(100, 0, 100, 100))
