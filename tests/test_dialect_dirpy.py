"""Dirpy's query language folded into one Transform, and what it refuses."""

import pytest

from imagepipe.web.dialects.dirpy import parse
from imagepipe.web.transform import BadTransform, Transform


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
    ("resize=300x200&pad=300x200", Transform(width=300, height=200, mode="pad", enlarge=True)),
    ("resize=300x200,shrink&pad=bg:FFF", Transform(width=300, height=200, mode="pad",
                                                   background="#fff")),
    ("resize=300x200&pad=300x200,bg:00ff7f", Transform(width=300, height=200, mode="pad",
                                                       enlarge=True, background="#00ff7f")),
    ("resize=300x200&pad=bg:white", Transform(width=300, height=200, mode="pad", enlarge=True,
                                              background="white")),
    ("crop=border", Transform(trim=True)),
    ("crop=border&resize=100x", Transform(trim=True, width=100, enlarge=True)),
    ("transpose=rotate90", Transform(rotate=90)),
    ("transpose=rotate180", Transform(rotate=180)),
    ("transpose=rotate270", Transform(rotate=270)),
    ("transpose=flip_h", Transform(flip="h")),
    ("transpose=flip_v", Transform(flip="v")),
    ("resize=300x200&transpose=rotate90", Transform(width=300, height=200, enlarge=True,
                                                    rotate=90)),
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
               flip="h", format="png")),
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
    # repeated commands
    ("resize=10x10&resize=20x20", "resize: given twice"),
    ("save=qual:1&save=fmt:png", "save: given twice"),
    ("transpose=rotate90&transpose=flip_h", "transpose: given twice"),
    ("crop=border&crop=border", "crop: given twice"),
    # order the model cannot express
    ("resize=10x10&pad=10x10&resize=5x5", "resize: given twice"),
    ("pad=10x10&resize=10x10", "pad: needs a resize to the same box before it"),
    ("transpose=rotate90&resize=10x10", "resize after transpose cannot be expressed"),
    ("transpose=flip_h&crop=border", "crop after transpose cannot be expressed"),
    ("resize=10x10&crop=border", "crop=border must come before resize and pad"),
    ("resize=10x10&pad=10x10&crop=border", "crop=border must come before resize and pad"),
    ("resize=10x10,fill", "resize: fill must be followed by crop to its box"),
    ("resize=10x10,fill&pad=10x10", "pad: resize with fill must be followed by crop"),
    ("resize=10x10,fill&transpose=rotate90", "transpose: resize with fill must be followed"),
    ("resize=10x10,fill&crop=5x5", "crop: size 5x5 must match the resize box 10x10"),
    ("resize=10x10,fill&crop=10x", "crop: size 10x must match the resize box 10x10"),
    ("crop=10x10", "crop: a crop by size needs the source size"),
    ("crop=gravity:n", "crop: a crop by size needs the source size"),
    ("resize=10x10&crop=10x10", "crop: a crop by size needs the source size"),
    ("resize=10x10&crop=0,0,10,10", "crop=x1,y1,x2,y2 must come before resize"),
    ("resize=10x10,fill&crop=0,0,10,10", "crop=x1,y1,x2,y2 must come before resize"),
    ("crop=10,0,10,10", "crop: the box is empty"),
    ("crop=0,-1,10,10", "must not be negative"),
    ("crop=0,0,10,99999999", "crop: box coordinate must be a whole number"),
    ("resize=pct:50&pad=10x10", "pad: cannot follow a resize with pct"),
    ("resize=pct:50,fill", "resize: pct excludes fill"),
    ("resize=10x10,grow,shrink", "resize: shrink and grow exclude each other"),
    ("resize=10x10&pad=20x20", "pad: size 20x20 must match the resize box 10x10"),
    ("resize=10x&pad=", "pad: needs both width and height"),
    ("resize=10x10,unlock&pad=10x10", "pad: cannot follow a resize with unlock"),
    ("resize=10x10,fill&crop=&pad=10x10", "pad: cannot follow a resize with fill"),
    # sizes
    ("resize=", "resize: needs a size WxH, Wx or xH"),
    ("resize=shrink", "resize: needs a size"),
    ("resize=x", "resize: expected a size WxH, Wx or xH, got 'x'"),
    ("resize=10x10x10", "resize: expected a size WxH, Wx or xH, got '10x10x10'"),
    ("resize=axb", "resize: expected a size WxH, Wx or xH, got 'axb'"),
    ("resize=-10x10", "resize: expected a size"),
    ("resize=0x10", "resize: width must be a whole number 1..16384, got '0'"),
    ("resize=10x0", "resize: height must be a whole number 1..16384, got '0'"),
    ("resize=16385x10", "resize: width must be a whole number 1..16384"),
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
    ("resize=10x10&pad=10x10,gravity:n", "pad: unknown option 'gravity:n'"),
    ("resize=10x10&pad=10x10,trans:50", "pad: unknown option 'trans:50'"),
    ("transpose=", "transpose: expected one of rotate90, rotate180, rotate270, flip_h, flip_v"),
    ("transpose=rotate45", "transpose: expected one of"),
    ("transpose=flipvert", "got 'flipvert'"),
    ("transpose=rotate90,flip_h", "transpose: expected one of"),
    ("save=todisk:/tmp/x", "save: unknown option 'todisk:/tmp/x'"),
    ("save=noshow", "save: unknown option 'noshow'"),
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
