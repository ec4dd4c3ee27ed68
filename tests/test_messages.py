"""Wire messages: what encode writes, what decode accepts, and every refusal."""

import hashlib
import json
import struct

import pytest

from imagepipe.paths import PathRules
from imagepipe.replication.messages import (
    MAX_PATHS, FileEntry, InvalidMessage, Message, decode, encode, header, pack, unpack)
from support.frames import changed, drop_field, set_field, set_file

ORIGIN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
SHA_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def store(*files, seq=1, hlc=5):
    return Message("store", ORIGIN, seq, hlc,
                   files=[FileEntry.of(path, data) for path, data in files])


def move(pairs, seq=2, hlc=6):
    return Message("move", ORIGIN, seq, hlc,
                   files=[FileEntry.of(dst, data) for _, dst, data in pairs],
                   deleted=[src for src, _, _ in pairs])


def delete(*paths, seq=3, hlc=7):
    return Message("delete", ORIGIN, seq, hlc, deleted=paths)


def heartbeat(applied, hlc=8):
    return Message("heartbeat", ORIGIN, 0, hlc, applied=applied)


def frames_with(message, change):
    """The frames of ``message`` with ``change(head)`` applied to the decoded header."""
    return changed(encode(message), change)


# Round trips and the exact format

@pytest.mark.parametrize("message", [
    store(("a/b.jpg", b"\xff\xd8data"), ("a/b_small.jpg", b"small")),
    store(("zdjęcia/żółw.jpg", b"turtle"), ("日本/写真.png", b"photo")),
    store(("empty.jpg", b"")),
    move([("a.jpg", "b/a.jpg", b"bytes"), ("c.jpg", "d.jpg", b"")]),
    move([("same.jpg", "same.jpg", b"x")]),
    delete("a.jpg", "b/ć.jpg"),
    heartbeat({OTHER: 12, ORIGIN: 0}),
    heartbeat({}),
], ids=["store", "non-ascii-store", "empty-file", "move", "move-onto-itself", "delete",
        "heartbeat", "empty-heartbeat"])
def test_every_type_survives_a_round_trip(message):
    assert decode(encode(message)) == message


def test_store_header_is_compact_json_with_sorted_keys():
    frames = encode(store(("x.jpg", b""), hlc=7))
    assert frames == [
        b'{"files":[{"path":"x.jpg","sha256":"' + SHA_EMPTY.encode() + b'","size":0}],'
        b'"hlc":7,"origin":"' + ORIGIN.encode() + b'","seq":1,"type":"store","v":1}',
        b"",
    ]


def test_non_ascii_paths_are_written_as_utf8_not_escapes():
    head = encode(store(("żółw.jpg", b"t")))[0]
    assert "żółw.jpg".encode("utf-8") in head
    assert b"\\u" not in head


def test_data_frames_follow_the_header_in_listed_order():
    frames = encode(store(("a.jpg", b"first"), ("b.jpg", b"second")))
    listed = json.loads(frames[0])["files"]
    assert [entry["path"] for entry in listed] == ["a.jpg", "b.jpg"]
    assert frames[1:] == [b"first", b"second"]
    assert listed[1]["sha256"] == hashlib.sha256(b"second").hexdigest()
    assert listed[1]["size"] == 6


@pytest.mark.parametrize("message, fields", [
    (store(("a", b"x")), {"v", "type", "origin", "seq", "hlc", "files"}),
    (move([("a", "b", b"x")]), {"v", "type", "origin", "seq", "hlc", "files", "deleted"}),
    (delete("a"), {"v", "type", "origin", "seq", "hlc", "deleted"}),
    (heartbeat({OTHER: 1}), {"v", "type", "origin", "hlc", "applied"}),
], ids=["store", "move", "delete", "heartbeat"])
def test_each_type_carries_exactly_its_fields(message, fields):
    assert set(json.loads(encode(message)[0])) == fields


def test_encoding_is_deterministic():
    one = heartbeat({OTHER: 3, ORIGIN: 4})
    two = heartbeat({ORIGIN: 4, OTHER: 3})
    assert one == two
    assert encode(one) == encode(two) == encode(one)
    assert json.loads(encode(one)[0])["applied"] == {ORIGIN: 4, OTHER: 3}


def test_a_heartbeat_has_seq_zero_and_applied_in_origin_order():
    message = decode(encode(heartbeat({OTHER: 3, ORIGIN: 4})))
    assert message.seq == 0
    assert message.applied == ((ORIGIN, 4), (OTHER, 3))
    assert message.applied_map == {ORIGIN: 4, OTHER: 3}


def test_messages_are_hashable_and_keyed_by_origin_and_seq():
    message = store(("a", b"x"), seq=9)
    assert message.key == (ORIGIN, 9)
    assert len({message, store(("a", b"x"), seq=9)}) == 1


def test_file_entry_of_computes_sha256_and_size():
    entry = FileEntry.of("a", bytearray(b"abc"))
    assert entry == FileEntry("a", b"abc", hashlib.sha256(b"abc").hexdigest(), 3)


def test_unknown_header_fields_are_ignored():
    frames = frames_with(store(("a", b"x")), set_field("future", {"anything": [1]}))
    assert decode(frames) == store(("a", b"x"))


def test_header_returns_the_json_object_without_checking_the_rest():
    assert header([b'{"type":"store","seq":"not checked"}', b"x"]) == {
        "type": "store", "seq": "not checked"}


def test_header_refuses_frames_that_are_not_json():
    with pytest.raises(InvalidMessage, match="header: not JSON"):
        header([b"{"])


# Refusals

VALID_STORE = store(("a/b.jpg", b"data"), ("c.jpg", b"more"))
VALID_MOVE = move([("a.jpg", "b.jpg", b"x"), ("c.jpg", "d.jpg", b"y")])
VALID_DELETE = delete("a.jpg")
VALID_HEARTBEAT = heartbeat({OTHER: 1})

REFUSED_HEADERS = [
    ("v-missing", VALID_STORE, drop_field("v"), r"^v: missing$"),
    ("v-higher", VALID_STORE, set_field("v", 2), r"^v: unsupported version 2"),
    ("v-zero", VALID_STORE, set_field("v", 0), r"^v: unsupported version 0"),
    ("v-string", VALID_STORE, set_field("v", "1"), r"^v: expected an integer"),
    ("v-float", VALID_STORE, set_field("v", 1.0), r"^v: expected an integer"),
    ("v-bool", VALID_STORE, set_field("v", True), r"^v: expected an integer"),
    ("type-missing", VALID_STORE, drop_field("type"), r"^type: missing$"),
    ("type-unknown", VALID_STORE, set_field("type", "copy"), r"^type: unknown message type"),
    ("type-not-string", VALID_STORE, set_field("type", ["store"]), r"^type: unknown"),
    ("origin-missing", VALID_STORE, drop_field("origin"), r"^origin: missing$"),
    ("origin-uppercase", VALID_STORE, set_field("origin", ORIGIN.upper()),
     r"^origin: expected 32"),
    ("origin-short", VALID_STORE, set_field("origin", ORIGIN[:31]), r"^origin: expected 32"),
    ("origin-long", VALID_STORE, set_field("origin", ORIGIN + "0"), r"^origin: expected 32"),
    ("origin-newline", VALID_STORE, set_field("origin", ORIGIN + "\n"), r"^origin: expected 32"),
    ("origin-not-hex", VALID_STORE, set_field("origin", "g" * 32), r"^origin: expected 32"),
    ("origin-int", VALID_STORE, set_field("origin", 12), r"^origin: expected 32"),
    ("seq-missing", VALID_STORE, drop_field("seq"), r"^seq: missing from a store"),
    ("seq-zero", VALID_STORE, set_field("seq", 0), r"^seq: expected an integer in 1\.\."),
    ("seq-negative", VALID_DELETE, set_field("seq", -1), r"^seq: expected an integer in 1\.\."),
    ("seq-bool", VALID_STORE, set_field("seq", True), r"^seq: expected an integer"),
    ("seq-string", VALID_STORE, set_field("seq", "1"), r"^seq: expected an integer"),
    ("seq-huge", VALID_STORE, set_field("seq", 2 ** 63), r"^seq: expected an integer"),
    ("hlc-missing", VALID_STORE, drop_field("hlc"), r"^hlc: missing$"),
    ("hlc-negative", VALID_STORE, set_field("hlc", -1), r"^hlc: expected an integer in 0\.\."),
    ("hlc-2-63", VALID_STORE, set_field("hlc", 2 ** 63), r"^hlc: expected an integer"),
    ("hlc-bool", VALID_HEARTBEAT, set_field("hlc", False), r"^hlc: expected an integer"),
    ("hlc-float", VALID_STORE, set_field("hlc", 5.0), r"^hlc: expected an integer"),
    ("files-missing", VALID_STORE, drop_field("files"), r"^files: missing from a store"),
    ("files-not-list", VALID_STORE, set_field("files", {"path": "a"}), r"^files: expected a list"),
    ("file-not-object", VALID_STORE, lambda h: h["files"].__setitem__(0, "a/b.jpg"),
     r"^files\[0\]: expected an object"),
    ("file-path-missing", VALID_STORE, lambda h: h["files"][1].pop("path"),
     r"^files\[1\]\.path: missing$"),
    ("file-size-missing", VALID_STORE, lambda h: h["files"][0].pop("size"),
     r"^files\[0\]\.size: missing$"),
    ("file-sha-missing", VALID_STORE, lambda h: h["files"][0].pop("sha256"),
     r"^files\[0\]\.sha256: missing$"),
    ("size-mismatch", VALID_STORE, set_file(0, "size", 5),
     r"^files\[0\]\.size is 5 but the data is 4 bytes$"),
    ("size-negative", VALID_STORE, set_file(0, "size", -4), r"^files\[0\]\.size: expected"),
    ("size-bool", VALID_STORE, set_file(0, "size", True), r"^files\[0\]\.size: expected"),
    ("sha-mismatch", VALID_STORE, set_file(1, "sha256", SHA_EMPTY),
     r"^files\[1\]\.sha256 does not match the data$"),
    ("sha-uppercase", VALID_STORE,
     set_file(0, "sha256", hashlib.sha256(b"data").hexdigest().upper()),
     r"^files\[0\]\.sha256: expected 64 lowercase hex"),
    ("sha-short", VALID_STORE, set_file(0, "sha256", "ab"), r"^files\[0\]\.sha256: expected 64"),
    ("path-dotdot", VALID_STORE, set_file(0, "path", "../x"),
     r"^files\[0\]\.path: '\.\.' components are not allowed"),
    ("path-inner-dotdot", VALID_STORE, set_file(0, "path", "a/../../x"),
     r"^files\[0\]\.path: '\.\.' components"),
    ("path-absolute", VALID_STORE, set_file(0, "path", "/etc/passwd"),
     r"^files\[0\]\.path: absolute paths are not allowed"),
    ("path-hidden", VALID_STORE, set_file(1, "path", ".hidden"),
     r"^files\[1\]\.path: components starting with '\.'"),
    ("path-nul", VALID_STORE, set_file(0, "path", "a\x00b.jpg"),
     r"^files\[0\]\.path: control characters"),
    ("path-backslash", VALID_STORE, set_file(0, "path", "a\\b.jpg"),
     r"^files\[0\]\.path: backslashes"),
    ("path-empty", VALID_STORE, set_file(0, "path", ""), r"^files\[0\]\.path: path is empty"),
    ("path-empty-component", VALID_STORE, set_file(0, "path", "a//b"),
     r"^files\[0\]\.path: empty path components"),
    ("path-not-string", VALID_STORE, set_file(0, "path", 7),
     r"^files\[0\]\.path: expected a string"),
    ("path-not-nfc", VALID_STORE, set_file(0, "path", "z\u0307o\u0301\u0142w.jpg"),
     r"^files\[0\]\.path: .* is not in its clean form"),
    ("path-duplicate", VALID_STORE, set_file(1, "path", "a/b.jpg"),
     r"^files\[1\]\.path: 'a/b\.jpg' is already files\[0\]$"),
    ("store-with-deleted", VALID_STORE, set_field("deleted", ["x"]),
     r"^deleted: not allowed in a store message$"),
    ("store-with-empty-deleted", VALID_STORE, set_field("deleted", []),
     r"^deleted: not allowed in a store"),
    ("store-without-files", store(("a", b"")), lambda h: h.__setitem__("files", []),
     r"^files: 0 listed but 1 data frames sent$"),
    ("store-with-applied", VALID_STORE, set_field("applied", {}), r"^applied: not allowed"),
    ("delete-with-files", VALID_DELETE, set_field("files", []),
     r"^files: not allowed in a delete message$"),
    ("delete-missing-deleted", VALID_DELETE, drop_field("deleted"),
     r"^deleted: missing from a delete"),
    ("delete-empty", VALID_DELETE, set_field("deleted", []),
     r"^deleted: a delete needs at least one path$"),
    ("deleted-not-list", VALID_DELETE, set_field("deleted", "a.jpg"),
     r"^deleted: expected a list"),
    ("deleted-dotdot", VALID_DELETE, set_field("deleted", ["a.jpg", "../etc"]),
     r"^deleted\[1\]: '\.\.' components are not allowed"),
    ("deleted-absolute", VALID_DELETE, set_field("deleted", ["/a.jpg"]),
     r"^deleted\[0\]: absolute paths"),
    ("deleted-not-string", VALID_DELETE, set_field("deleted", [None]),
     r"^deleted\[0\]: expected a string"),
    ("move-fewer-sources", VALID_MOVE, lambda h: h["deleted"].pop(),
     r"^move: 2 destinations but 1 sources$"),
    ("move-without-deleted", VALID_MOVE, drop_field("deleted"), r"^deleted: missing from a move"),
    ("move-empty-deleted", VALID_MOVE, set_field("deleted", []),
     r"^deleted: a move needs at least one path$"),
    ("move-duplicate-destination", VALID_MOVE, set_file(1, "path", "b.jpg"),
     r"^files\[1\]\.path: 'b\.jpg' is already files\[0\]$"),
    ("heartbeat-with-seq", VALID_HEARTBEAT, set_field("seq", 1),
     r"^seq: not allowed in a heartbeat message$"),
    ("heartbeat-with-files", VALID_HEARTBEAT, set_field("files", []),
     r"^files: not allowed in a heartbeat"),
    ("heartbeat-without-applied", VALID_HEARTBEAT, drop_field("applied"),
     r"^applied: missing from a heartbeat"),
    ("applied-not-object", VALID_HEARTBEAT, set_field("applied", [[OTHER, 1]]),
     r"^applied: expected an object"),
    ("applied-bad-origin", VALID_HEARTBEAT, set_field("applied", {"node-a": 1}),
     r"^applied: expected 32 lowercase hex digits, got 'node-a'$"),
    ("applied-negative", VALID_HEARTBEAT, set_field("applied", {OTHER: -1}),
     rf"^applied\['{OTHER}'\]: expected an integer in 0\.\."),
    ("applied-bool", VALID_HEARTBEAT, set_field("applied", {OTHER: True}),
     r"^applied\[.*\]: expected an integer"),
    ("applied-string", VALID_HEARTBEAT, set_field("applied", {OTHER: "3"}),
     r"^applied\[.*\]: expected an integer"),
]


@pytest.mark.parametrize("message, change, error", [case[1:] for case in REFUSED_HEADERS],
                         ids=[case[0] for case in REFUSED_HEADERS])
def test_a_malformed_header_is_refused_with_its_reason(message, change, error):
    with pytest.raises(InvalidMessage, match=error):
        decode(frames_with(message, change))


REFUSED_FRAMES = [
    ("not-a-list", b"{}", r"^frames: expected a non-empty list"),
    ("empty-list", [], r"^frames: expected a non-empty list"),
    ("header-not-bytes", ['{"v":1}'], r"^frame 0: expected bytes, got str$"),
    ("not-json", [b"store a.jpg"], r"^header: not JSON"),
    ("empty-header", [b""], r"^header: not JSON"),
    ("json-array", [b"[1,2]"], r"^header: expected a JSON object, got list$"),
    ("json-string", [b'"store"'], r"^header: expected a JSON object, got str$"),
    ("json-null", [b"null"], r"^header: expected a JSON object, got NoneType$"),
    ("not-utf8", [b'{"v":1,"type":"\xff"}'], r"^header: not valid UTF-8$"),
    ("utf16", ['{"v":1}'.encode("utf-16")], r"^header: not valid UTF-8$"),
    ("nan", [b'{"v":1,"hlc":NaN}'], r"^header: NaN is not allowed in JSON$"),
    ("duplicate-field", [b'{"v":1,"type":"store","type":"delete"}'],
     r"^header: field 'type' appears twice$"),
    ("deep-nesting", [b"[" * 100000 + b"]" * 100000], r"^header: not JSON"),
    ("huge-integer", [b'{"v":' + b"9" * 5000 + b"}"], r"^header: not JSON"),
    ("store-missing-frame", encode(VALID_STORE)[:-1], r"^files: 2 listed but 1 data frames sent$"),
    ("store-extra-frame", encode(VALID_STORE) + [b"extra"],
     r"^files: 2 listed but 3 data frames sent$"),
    ("store-swapped-frames", [encode(VALID_STORE)[0], b"more", b"data"],
     r"^files\[0\]\.sha256 does not match the data$"),
    ("data-not-bytes", encode(VALID_STORE)[:2] + ["more"], r"^frame 2: expected bytes, got str$"),
    ("delete-with-frame", encode(VALID_DELETE) + [b"x"],
     r"^delete: carries 1 data frames, expected none$"),
    ("heartbeat-with-frame", encode(VALID_HEARTBEAT) + [b"x"],
     r"^heartbeat: carries 1 data frames, expected none$"),
]


@pytest.mark.parametrize("frames, error", [case[1:] for case in REFUSED_FRAMES],
                         ids=[case[0] for case in REFUSED_FRAMES])
def test_malformed_frames_are_refused_with_their_reason(frames, error):
    with pytest.raises(InvalidMessage, match=error):
        decode(frames)


def test_a_delete_of_the_same_path_twice_is_accepted():
    # The origin's delete ignores paths already gone; refusing here would
    # leave the path alive on the peer.
    assert decode(encode(delete("a.jpg", "a.jpg"))).deleted == ("a.jpg", "a.jpg")


def test_more_than_the_path_limit_is_refused_before_any_path_is_checked():
    head = {"v": 1, "type": "delete", "origin": ORIGIN, "seq": 1, "hlc": 0,
            "deleted": ["../bad"] * (MAX_PATHS + 1)}
    with pytest.raises(InvalidMessage, match=rf"^message: {MAX_PATHS + 1} paths exceed"):
        decode([json.dumps(head).encode()])


def test_the_path_limit_counts_both_sides_of_a_move():
    half = MAX_PATHS // 2 + 1
    head = {"v": 1, "type": "move", "origin": ORIGIN, "seq": 1, "hlc": 0,
            "files": [{}] * half, "deleted": ["a"] * half}
    with pytest.raises(InvalidMessage, match=r"^message: \d+ paths exceed"):
        decode([json.dumps(head).encode()] + [b""] * half)


def test_exactly_the_path_limit_is_accepted():
    message = delete(*[f"d/{index}.jpg" for index in range(MAX_PATHS)])
    assert decode(encode(message)) == message


def test_paths_that_transliteration_would_change_are_refused_by_an_ascii_node():
    frames = encode(store(("żółw.jpg", b"t")))
    assert decode(frames).files[0].path == "żółw.jpg"
    with pytest.raises(InvalidMessage, match=r"^files\[0\]\.path: 'żółw\.jpg' is not in its "
                                             r"clean form 'zolw\.jpg'$"):
        decode(frames, PathRules(transliterate=True))


# The journal body

def test_pack_writes_big_endian_counts_and_lengths():
    assert pack([b"ab", b""]) == b"\x00\x00\x00\x02" b"\x00\x00\x00\x02ab" b"\x00\x00\x00\x00"


def test_pack_refuses_an_empty_message():
    with pytest.raises(ValueError):
        pack([])


@pytest.mark.parametrize("frames", [[b"{}"], [b"h", b"", b"\x00" * 70000], encode(VALID_STORE)],
                         ids=["one", "empty-and-large", "store"])
def test_unpack_reverses_pack(frames):
    assert unpack(pack(frames)) == frames


def test_unpack_accepts_any_buffer():
    assert unpack(bytearray(pack([b"x"]))) == [b"x"]
    assert unpack(memoryview(pack([b"x"]))) == [b"x"]


def test_every_truncation_of_a_body_is_refused():
    body = pack([b"header", b"", b"data"])
    for cut in range(len(body)):
        with pytest.raises(InvalidMessage, match="^body: "):
            unpack(body[:cut])


@pytest.mark.parametrize("body, error", [
    (pack([b"x"]) + b"\x00", r"^body: 1 bytes after the last frame$"),
    (b"\x00\x00\x00\x00", r"^body: holds no frames$"),
    (b"\xff\xff\xff\xff" + b"\x00" * 12, r"^body: 4294967295 frames cannot fit in 16 bytes$"),
    (struct.pack(">II", 1, 2 ** 32 - 1) + b"x", r"^body: frame 0 of 4294967295 bytes runs past"),
    (struct.pack(">II", 2, 4) + b"abcd\x00\x00", r"^body: frame 1 has no length$"),
], ids=["trailing", "zero-count", "absurd-count", "absurd-length", "missing-length"])
def test_an_inconsistent_body_is_refused(body, error):
    with pytest.raises(InvalidMessage, match=error):
        unpack(body)
