"""The error-to-status table and Accept parsing of the HTTP renderer (pure parts)."""

import pytest

from imagepipe.errors import (Busy, ClientError, OperationFailed, OriginError, OriginTimeout,
                              SourceMissing, SourceTooLarge, TooLarge)
from imagepipe.web.dialects import NotAllowed
from imagepipe.web.render import _accept, status_of
from imagepipe.web.signing import BadSignature
from imagepipe.imaging.transform import BadTransform


@pytest.mark.parametrize("error, status", [
    (BadTransform("width"), 400),
    (NotAllowed("whitelist"), 403),
    (BadSignature("signature"), 403),
    (SourceMissing("gone"), 404),
    (SourceTooLarge("max_bytes"), 413),
    (TooLarge("max_pixels"), 422),
    (ClientError("not an image"), 422),
    (Busy("busy"), 429),
    (OriginError("refused"), 502),
    (OriginTimeout("slow"), 504),
    (OperationFailed("disk"), 500),
    (RuntimeError("bug"), 500),
])
def test_each_error_has_one_status(error, status):
    assert status_of(error) == status


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
