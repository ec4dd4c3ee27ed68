"""Dirpy's query language: its commands as steps in the order written, folded where one
Transform does them, and what it refuses."""

import pytest

from imagepipe.web.dialects.dirpy import parse
from imagepipe.imaging.transform import BadTransform, Transform


def q(text):
    """``a=1&b=2`` as ordered (name, value) pairs."""
    return [tuple(part.partition("=")[::2]) for part in text.split("&")] if text else []


@pytest.mark.parametrize("query,transform", [
    ("", Transform()),
    ("resize=300x200", Transform(width=300, height=200, enlarge=True)),
    ("resize=300x", Transform(width=300, enlarge=True)),
    ("resize=x200", Transform(height=200, enlarge=True)),
    ("resize=300x200,shrink", Transform(width=300, height=200)),
    ("resize=300x200,unlock", Transform(width=300, height=200, mode="force", enlarge=True)),
    ("resize=300x200,unlock,shrink", Transform(width=300, height=200, mode="force")),
    ("resize=300x200,filter:mitchell", Transform(width=300, height=200, enlarge=True,
                                                 filter="mitchell")),
    ("resize=300x200,filter:antialias", Transform(width=300, height=200, enlarge=True,
                                                  filter="lanczos")),
    ("resize=300x200,filter:nearest", Transform(width=300, height=200, enlarge=True,
                                                filter="point")),
    ("resize=300x200,fill&crop=300x200", Transform(width=300, height=200, mode="fill",
                                                   enlarge=True)),
    ("resize=300x200,fill&crop=", Transform(width=300, height=200, mode="fill", enlarge=True)),
    ("resize=300x200,fill&crop=gravity:ne", Transform(width=300, height=200, mode="fill",
                                                      enlarge=True, gravity="northeast")),
    ("resize=300x200,fill,shrink&crop=300x200,gravity:sw",
     Transform(width=300, height=200, mode="fill", gravity="southwest")),
    ("resize=300x200&pad=300x200", Transform(width=300, height=200, mode="pad", enlarge=True,
                                             background="white")),
    ("resize=300x200,shrink&pad=bg:FFF", Transform(width=300, height=200, mode="pad",
                                                   background="#fff")),
    ("resize=300x200&pad=300x200,bg:00ff7f", Transform(width=300, height=200, mode="pad",
                                                       enlarge=True, background="#00ff7f")),
    ("resize=300x200&pad=bg:white", Transform(width=300, height=200, mode="pad", enlarge=True,
                                              background="white")),
    ("crop=border", Transform(trim=True)),
    ("crop=border&resize=100x", Transform(trim=True, width=100, enlarge=True)),
    ("transpose=rotate90", Transform(rotate=270)),  # PIL's ROTATE_90: counter-clockwise
    ("transpose=rotate180", Transform(rotate=180)),
    ("transpose=rotate270", Transform(rotate=90)),
    ("transpose=flipvert", Transform(flip="h")),
    ("transpose=fliphorz", Transform(flip="v")),
    ("transpose=flip_h", Transform(flip="h")),
    ("transpose=flip_v", Transform(flip="v")),
    # Commands apply in the order written; neighbours one Transform does alike are folded.
    ("resize=300x200&transpose=rotate90", Transform(width=300, height=200, enlarge=True,
                                                    then=(Transform(rotate=270),))),
    ("transpose=rotate90&resize=300x100", Transform(rotate=270, width=300, height=100,
                                                    enlarge=True)),
    ("transpose=rotate90&transpose=flipvert", Transform(rotate=270, flip="h")),
    ("transpose=flipvert&transpose=rotate90", Transform(flip="h",
                                                        then=(Transform(rotate=270),))),
    ("pad=300x300,bg:00f", Transform(width=300, height=300, mode="pad", background="#00f")),
    ("pad=300x300,gravity:ne", Transform(width=300, height=300, mode="pad", background="white",
                                         gravity="northeast")),
    ("pad=10x10&resize=20x20", Transform(width=10, height=10, mode="pad", background="white",
                                         then=(Transform(width=20, height=20, enlarge=True),))),
    ("resize=10x10&pad=10x10&resize=5x5",
     Transform(width=10, height=10, mode="pad", enlarge=True, background="white",
               then=(Transform(width=5, height=5, enlarge=True),))),
    ("resize=10x10&pad=20x20", Transform(width=10, height=10, enlarge=True, then=(
        Transform(width=20, height=20, mode="pad", background="white"),))),
    ("resize=10x10,grow&pad=10x10", Transform(width=10, height=10, enlarge=True, shrink=False,
                                              then=(Transform(width=10, height=10, mode="pad",
                                                              background="white"),))),
    ("resize=10x10,fill", Transform(width=10, height=10, mode="cover", enlarge=True)),
    ("resize=10x10,fill&crop=5x5", Transform(width=10, height=10, mode="cover", enlarge=True,
                                             then=(Transform(width=5, height=5, mode="fill",
                                                             shrink=False),))),
    ("crop=10x10,gravity:n", Transform(width=10, height=10, mode="fill", shrink=False,
                                       gravity="north")),
    ("resize=10x10&crop=", Transform(width=10, height=10, enlarge=True, then=(
        Transform(width=10, height=10, mode="fill", shrink=False),))),
    ("resize=10x10&crop=0,0,5,5", Transform(width=10, height=10, enlarge=True,
                                            then=(Transform(crop_pixels=(0, 0, 5, 5)),))),
    ("crop=0,0,50,50&crop=border&resize=10x", Transform(crop_pixels=(0, 0, 50, 50), trim=True,
                                                        width=10, enlarge=True)),
    ("resize=10x10&crop=border", Transform(width=10, height=10, enlarge=True,
                                           then=(Transform(trim=True),))),
    ("resize=10x10&resize=20x20", Transform(width=10, height=10, enlarge=True,
                                            then=(Transform(width=20, height=20, enlarge=True),))),
    ("resize=pct:50&pad=10x10", Transform(scale=0.5, then=(
        Transform(width=10, height=10, mode="pad", background="white"),))),
    ("save=fmt:webp,qual:80,progressive", Transform(format="webp", quality=80,
                                                    progressive=True)),
    ("save=fmt:jpeg", Transform(format="jpg")),
    ("save=fmt:PNG", Transform(format="png")),
    ("save=fmt:gif", Transform(format="gif")),
    ("save=qual:1", Transform(quality=1)),
    ("save=qual:100", Transform(quality=100)),
    ("save=", Transform()),
    ("save=fmt:jpg&resize=50x50", Transform(format="jpg", width=50, height=50, enlarge=True)),
    ("resize=300x200,fill&save=qual:70&crop=gravity:s",
     Transform(width=300, height=200, mode="fill", enlarge=True, gravity="south", quality=70)),
    ("crop=border&resize=300x200&pad=300x200,bg:000&transpose=flip_h&save=fmt:png",
     Transform(trim=True, width=300, height=200, mode="pad", enlarge=True, background="#000",
               format="png", then=(Transform(flip="h"),))),
])
def test_each_form_gives_its_transform(query, transform):
    assert parse("/photos/cat.jpg", q(query)).transform == transform


def test_the_path_is_the_clean_source():
    assert parse("/photos/a/cat.jpg").source == "photos/a/cat.jpg"
    assert parse("cat.jpg", None).source == "cat.jpg"


@pytest.mark.parametrize("gravity,name", [
    ("c", "center"), ("n", "north"), ("ne", "northeast"), ("e", "east"), ("se", "southeast"),
    ("s", "south"), ("sw", "southwest"), ("w", "west"), ("nw", "northwest"),
])
def test_crop_gravities(gravity, name):
    query = [("resize", "10x10,fill"), ("crop", f"gravity:{gravity}")]
    assert parse("cat.jpg", query).transform.gravity == name


@pytest.mark.parametrize("query,message", [
    # unknown and refused commands
    ("load=proxy:http://evil/", "load: loading from a proxy"),
    ("load=", "load: loading from a proxy"),
    ("rotate=90", "unknown command 'rotate' (known: resize, crop, pad, transpose, save)"),
    ("status=", "unknown command 'status'"),
    ("Resize=10x10", "unknown command 'Resize'"),
    ("__class__=x", "unknown command '__class__'"),
    # save is not a step: once
    ("save=qual:1&save=fmt:png", "save: given twice"),
    # sizes to inherit
    ("crop=gravity:n", "crop: needs a size WxH (or a command before it that gives one)"),
    ("pad=bg:fff", "pad: needs a size WxH"),
    ("resize=10x&crop=", "crop: needs both width and height, got 10x"),
    ("resize=10x10,fill&crop=10x", "crop: needs both width and height, got 10x"),
    ("crop=10,0,10,10", "crop: the box is empty"),
    ("crop=0,-1,10,10", "must not be negative"),
    ("crop=0,0,10,99999999", "crop: box coordinate must be a whole number"),
    ("resize=pct:50,fill", "resize: pct excludes fill"),
    ("resize=10x10,grow,shrink", "resize: shrink and grow exclude each other"),
    ("resize=10x&pad=", "pad: needs both width and height"),
    # sizes
    ("resize=", "resize: needs a size WxH, Wx or xH"),
    ("resize=shrink", "resize: needs a size"),
    ("resize=x", "resize: expected a size WxH, Wx or xH, got 'x'"),
    ("resize=10x10x10", "resize: expected a size WxH, Wx or xH, got '10x10x10'"),
    ("resize=axb", "resize: expected a size WxH, Wx or xH, got 'axb'"),
    ("resize=-10x10", "resize: expected a size"),
    ("resize=0x10", "resize: width must be a whole number 1..65535, got '0'"),
    ("resize=10x0", "resize: height must be a whole number 1..65535, got '0'"),
    ("resize=65536x10", "resize: width must be a whole number 1..65535"),
    ("resize=99999999999999999x10", "resize: width must be a whole number"),
    ("resize=10x10,20x20", "resize: option 'size' given twice"),
    ("resize=pct:0", "resize: pct must be a whole number 1..1000"),
    ("resize=pct:1001", "resize: pct must be a whole number 1..1000"),
    ("resize=pct:abc", "resize: pct must be a whole number"),
    ("pad=0x10", "pad: width must be a whole number"),
    # options
    ("resize=10x10,fill,unlock", "resize: fill and unlock exclude each other"),
    ("resize=10x,unlock", "resize: unlock needs both width and height"),
    ("resize=x10,fill", "resize: fill needs both width and height"),
    ("resize=10x10,fill:1", "resize: option 'fill' takes no value"),
    ("resize=10x10,filter", "resize: option 'filter' needs a value"),
    ("resize=10x10,filter:fancy", "resize: unknown filter 'fancy'"),
    ("resize=10x10,landscape", "resize: unknown option 'landscape'"),
    ("resize=10x10,shrink,shrink", "resize: option 'shrink' given twice"),
    ("crop=border:10", "crop: option 'border' takes no value"),
    ("crop=border,gravity:n", "crop: border excludes a size and gravity"),
    ("crop=symmetric", "crop: unknown option 'symmetric'"),
    ("resize=10x10,fill&crop=gravity:up", "crop: gravity must be one of c, n, ne"),
    ("resize=10x10,fill&crop=gravity:NE", "crop: gravity must be one of"),
    ("crop=1,2,3", "crop: unknown option '1'"),
    ("resize=10x10&pad=10x10,gravity:up", "pad: gravity must be one of"),
    ("resize=10x10&pad=10x10,trans:50", "pad: unknown option 'trans:50'"),
    ("transpose=", "transpose: expected one of flipvert, fliphorz, rotate90, rotate180, "
                   "rotate270, flip_h, flip_v"),
    ("transpose=rotate45", "transpose: expected one of"),
    ("transpose=flip", "got 'flip'"),
    ("transpose=rotate90,flip_h", "transpose: expected one of"),
    ("save=todisk:/tmp/x", "save: unknown option 'todisk:/tmp/x'"),
    ("save=noshow", "save: unknown option 'noshow'"),
    ("save=300x200", "save: unknown option '300x200'"),
    ("save=progressive:1", "save: option 'progressive' takes no value"),
    ("save=fmt", "save: option 'fmt' needs a value"),
    ("save=fmt:bmp", "save: fmt must be one of jpg, png, gif, webp, got 'bmp'"),
    ("save=fmt:avif", "save: fmt must be one of"),
    ("save=qual:0", "save: qual must be a whole number 1..100, got '0'"),
    ("save=qual:101", "save: qual must be a whole number 1..100"),
    ("save=qual:high", "save: qual must be a whole number 1..100, got 'high'"),
    ("save=qual:-5", "save: qual must be a whole number"),
    ("save=qual:80,qual:90", "save: option 'qual' given twice"),
    # colours
    ("resize=10x10&pad=bg:ffff", "pad: bg must be RGB or RRGGBB"),
    ("resize=10x10&pad=bg:#fff", "pad: bg must be RGB or RRGGBB hex or a colour name"),
    ("resize=10x10&pad=bg:ggg", "pad: bg must be RGB or RRGGBB"),
    ("resize=10x10&pad=bg:12345", "pad: bg must be RGB or RRGGBB"),
    ("resize=10x10&pad=bg:cornflowerblue", "got 'cornflowerblue'"),
    ("resize=10x10&pad=bg:", "pad: bg must be RGB or RRGGBB"),
])
def test_malformed_queries_are_bad_transforms_naming_the_problem(query, message):
    with pytest.raises(BadTransform) as caught:
        parse("cat.jpg", q(query))
    assert message in str(caught.value)


@pytest.mark.parametrize("path,message", [
    ("/../etc/passwd", "'..' components are not allowed"),
    ("/a/../../b.jpg", "'..' components are not allowed"),
    ("/.htpasswd", "components starting with '.' are not allowed"),
    ("/a/.git/config", "components starting with '.' are not allowed"),
    ("//etc/passwd", "absolute paths are not allowed"),
    ("/", "path is empty"),
    ("", "path is empty"),
    ("/a//b.jpg", "empty path components"),
    ("/a\\b.jpg", "backslashes are not allowed"),
])
def test_bad_paths_are_bad_transforms_naming_the_problem(path, message):
    with pytest.raises(BadTransform) as caught:
        parse(path, q("resize=10x10"))
    assert message in str(caught.value)


@pytest.mark.parametrize("query, expected", [
    ("resize=pct:50", Transform(scale=0.5)),
    ("resize=pct:250,filter:bicubic", Transform(scale=2.5, filter="catrom")),
    ("resize=10x10,grow", Transform(width=10, height=10, enlarge=True, shrink=False)),
    ("crop=5,6,70,80", Transform(crop_pixels=(5, 6, 70, 80))),
    ("crop=5,6,70,80&resize=20x20&pad=bg:fff",
     Transform(crop_pixels=(5, 6, 70, 80), width=20, height=20, mode="pad", enlarge=True,
               background="#fff")),
])
def test_percent_sizes_grow_and_pixel_boxes(query, expected):
    assert parse("/a.jpg", q(query)).transform == expected
