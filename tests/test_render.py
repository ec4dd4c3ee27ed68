"""Accept parsing of the HTTP renderer (a pure part)."""

import pytest

from imagepipe.web.render import _accept


@pytest.mark.parametrize("header, expected", [
    (None, set()),
    (b"", set()),
    (b"image/webp,*/*", {"image/webp", "*/*"}),
    (b"image/avif;q=0.9, image/webp;q=0", {"image/avif"}),
    (b"IMAGE/WEBP ; q=1.0", {"image/webp"}),
    (b"image/webp;q=abc", set()),
])
def test_accept_admits_types_with_a_positive_quality(header, expected):
    assert _accept(header) == expected
