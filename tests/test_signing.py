"""Signed URLs: HMAC-SHA256 over the canonical path, several keys, the key file."""

import base64
import hashlib
import hmac

import pytest

from imagepipe.web.dialects import Request
from imagepipe.web.signing import BadSignature, Signer, canonical_path, read_keys
from imagepipe.imaging.transform import Transform

OLD, NEW = bytes(range(16)), bytes(range(16, 48))


def test_the_canonical_path_is_the_source_kind_the_transform_and_the_source():
    request = Request("photos/cat.jpg", Transform(width=300, mode="fill", height=200))
    assert canonical_path("tree", request) == "tree\nwidth:300/height:200/mode:fill\nphotos/cat.jpg"
    assert canonical_path("origins", Request("a.jpg", Transform())) == "origins\noriginal\na.jpg"


def test_a_transform_cannot_pass_for_part_of_the_source():
    # width 300 of "height:5/a.jpg" is another picture than width 300, height 5 of "a.jpg".
    one = canonical_path("tree", Request("a.jpg", Transform(width=300, height=5)))
    other = canonical_path("tree", Request("height:5/a.jpg", Transform(width=300)))
    assert one != other


def test_the_signature_is_urlsafe_base64_of_hmac_sha256():
    text = "/width:300/cat.jpg"
    digest = hmac.new(NEW, text.encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert Signer([NEW, OLD]).sign(text) == expected
    assert len(expected) == 43


def test_every_key_verifies_and_the_first_signs():
    text = "/width:300/cat.jpg"
    rotated = Signer([NEW, OLD])
    rotated.verify(Signer([OLD]).sign(text), text)
    rotated.verify(Signer([NEW]).sign(text), text)
    with pytest.raises(BadSignature):
        Signer([NEW]).verify(Signer([OLD]).sign(text), text)


@pytest.mark.parametrize("signature", ["", "x" * 43, "é" * 10, "AAAA"])
def test_wrong_signatures_are_refused(signature):
    with pytest.raises(BadSignature, match="does not match"):
        Signer([NEW]).verify(signature, "/width:300/cat.jpg")


def test_a_signature_for_another_path_is_refused():
    signer = Signer([NEW])
    with pytest.raises(BadSignature):
        signer.verify(signer.sign("/width:300/cat.jpg"), "/width:301/cat.jpg")


def test_the_key_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated 2026-11\n{NEW.hex()}\n\n{OLD.hex()}\n")
    assert read_keys(keys) == (NEW, OLD)


@pytest.mark.parametrize("text, message", [
    ("zz" * 16, "line 1: expected a key in hex"),
    ("ab" * 15, "line 1: key of 15 bytes is shorter than 16"),
    ("# only a comment", "no keys"),
])
def test_unusable_key_files_are_refused(tmp_path, text, message):
    keys = tmp_path / "keys"
    keys.write_text(text + "\n")
    with pytest.raises(ValueError, match=message):
        read_keys(keys)
