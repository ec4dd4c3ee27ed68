"""Sync conversation messages: what the encoders write, what the decoders accept, and
every refusal."""

import hashlib
import json

import pytest

from imagepipe.paths import PathRules
from imagepipe.replication.messages import InvalidMessage
from imagepipe.replication.sync_messages import (
    MAX_FETCH_PATHS, MAX_MANIFEST_ROWS, PathState, SyncAnswer, SyncRequest, decode_answer,
    decode_request, decode_state, encode_answer, encode_request, encode_state, state_from_row)
from support.frames import changed, drop_field, set_field

NODE = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
SHA = hashlib.sha256(b"bytes").hexdigest()
FILE = PathState("a/b.jpg", 7 << 16, OTHER, False, SHA)
TOMBSTONE = PathState("gone.jpg", 8 << 16, NODE, True, "")


def frames_of(head):
    return [json.dumps(head).encode("utf-8")]


# Round trips and the exact format

@pytest.mark.parametrize("request_", [
    SyncRequest("catchup", NODE, {OTHER: 3, NODE: 0}, limit=50),
    SyncRequest("catchup", NODE, {}, limit=1),
    SyncRequest("ack", NODE, {OTHER: 12}),
    SyncRequest("manifest", NODE),
    SyncRequest("fetch", NODE, paths=["a.jpg", "zdjęcia/żółw.jpg"]),
    SyncRequest("fetch", NODE, paths=[]),
], ids=["catchup", "catchup-from-nothing", "ack", "manifest", "fetch", "fetch-nothing"])
def test_every_request_survives_a_round_trip(request_):
    assert decode_request(encode_request(request_)) == request_


@pytest.mark.parametrize("answer", [
    SyncAnswer("caught-up", more=True),
    SyncAnswer("caught-up", more=False),
    SyncAnswer("full-sync-needed"),
    SyncAnswer("manifest-part", states=[FILE, TOMBSTONE]),
    SyncAnswer("manifest-part", states=[]),
    SyncAnswer("manifest-end", applied={OTHER: 4, NODE: 9}),
    SyncAnswer("fetch-end"),
], ids=["caught-up-more", "caught-up", "full-sync-needed", "manifest-part", "empty-part",
        "manifest-end", "fetch-end"])
def test_every_answer_survives_a_round_trip(answer):
    assert decode_answer(encode_answer(answer)) == answer


@pytest.mark.parametrize("state", [
    PathState("a/b.jpg", 7 << 16, OTHER, False, SHA, b"bytes"),
    PathState("żółw.jpg", 1, OTHER, False, hashlib.sha256(b"").hexdigest(), b""),
    TOMBSTONE,
], ids=["file", "empty-file", "tombstone"])
def test_every_file_answer_survives_a_round_trip(state):
    assert decode_state(encode_state(state)) == state


def test_a_request_is_one_frame_of_compact_json_with_sorted_keys():
    frames = encode_request(SyncRequest("catchup", NODE, {OTHER: 2}, limit=50))
    assert frames == [b'{"applied":{"' + OTHER.encode() + b'":2},"limit":50,"node":"'
                      + NODE.encode() + b'","type":"catchup"}']


def test_a_manifest_row_is_path_hlc_origin_deleted_and_sha256():
    frames = encode_answer(SyncAnswer("manifest-part", states=[FILE, TOMBSTONE]))
    assert json.loads(frames[0]) == {"type": "manifest-part", "rows": [
        ["a/b.jpg", 7 << 16, OTHER, 0, SHA], ["gone.jpg", 8 << 16, NODE, 1, ""]]}


def test_a_file_answer_is_its_header_then_the_bytes():
    frames = encode_state(PathState("a.jpg", 5, OTHER, False, SHA, b"bytes"))
    assert json.loads(frames[0]) == {"type": "file", "path": "a.jpg", "hlc": 5, "origin": OTHER,
                                     "deleted": False, "sha256": SHA}
    assert frames[1] == b"bytes"


@pytest.mark.parametrize("request_, fields", [
    (SyncRequest("catchup", NODE, {OTHER: 1}, limit=5), {"type", "node", "applied", "limit"}),
    (SyncRequest("ack", NODE, {OTHER: 1}, limit=5), {"type", "node", "applied"}),
    (SyncRequest("manifest", NODE, {OTHER: 1}, paths=["a"]), {"type", "node"}),
    (SyncRequest("fetch", NODE, {OTHER: 1}, paths=["a"]), {"type", "node", "paths"}),
], ids=["catchup", "ack", "manifest", "fetch"])
def test_each_request_carries_exactly_its_fields(request_, fields):
    assert set(json.loads(encode_request(request_)[0])) == fields


@pytest.mark.parametrize("answer, fields", [
    (SyncAnswer("caught-up", True, [FILE], {OTHER: 1}), {"type", "more"}),
    (SyncAnswer("full-sync-needed", True, [FILE], {OTHER: 1}), {"type"}),
    (SyncAnswer("manifest-part", True, [FILE], {OTHER: 1}), {"type", "rows"}),
    (SyncAnswer("manifest-end", True, [FILE], {OTHER: 1}), {"type", "applied"}),
    (SyncAnswer("fetch-end", True, [FILE], {OTHER: 1}), {"type"}),
], ids=["caught-up", "full-sync-needed", "manifest-part", "manifest-end", "fetch-end"])
def test_each_answer_carries_exactly_its_fields(answer, fields):
    assert set(json.loads(encode_answer(answer)[0])) == fields


def test_applied_is_kept_in_origin_order_and_read_back_as_a_dict():
    request = SyncRequest("ack", NODE, {OTHER: 3, NODE: 4})
    assert request.applied == ((NODE, 4), (OTHER, 3))
    assert request.applied_map == {NODE: 4, OTHER: 3}
    assert request == SyncRequest("ack", NODE, [(OTHER, 3), (NODE, 4)])
    assert SyncAnswer("manifest-end", applied={OTHER: 1}).applied_map == {OTHER: 1}


def test_a_limit_above_what_the_upstream_sends_is_still_a_valid_request():
    # The answering side sends at most its own batch, whatever was asked.
    assert decode_request(encode_request(SyncRequest("catchup", NODE, {}, limit=10**9))).limit \
        == 10**9


def test_unknown_fields_are_ignored():
    frames = changed(encode_request(SyncRequest("manifest", NODE)), set_field("future", [1]))
    assert decode_request(frames) == SyncRequest("manifest", NODE)
    frames = changed(encode_answer(SyncAnswer("fetch-end")), set_field("future", {"a": 1}))
    assert decode_answer(frames) == SyncAnswer("fetch-end")


def test_exactly_the_fetch_limit_is_accepted():
    paths = [f"d/{index}.jpg" for index in range(MAX_FETCH_PATHS)]
    assert decode_request(encode_request(SyncRequest("fetch", NODE, paths=paths))).paths \
        == tuple(paths)


def test_exactly_the_manifest_part_limit_is_accepted():
    states = [PathState(f"d/{index}.jpg", index, OTHER, False, SHA)
              for index in range(MAX_MANIFEST_ROWS)]
    assert decode_answer(encode_answer(SyncAnswer("manifest-part", states=states))).states \
        == tuple(states)


def test_a_row_may_say_deleted_as_true_or_1():
    assert state_from_row(["x.jpg", 1, OTHER, True, ""]) == \
        state_from_row(["x.jpg", 1, OTHER, 1, ""]) == PathState("x.jpg", 1, OTHER, True, "")


# Refusals

CATCHUP = encode_request(SyncRequest("catchup", NODE, {OTHER: 3}, limit=50))
ACK = encode_request(SyncRequest("ack", NODE, {OTHER: 3}))
FETCH = encode_request(SyncRequest("fetch", NODE, paths=["a.jpg", "b/c.jpg"]))
CAUGHT_UP = encode_answer(SyncAnswer("caught-up", more=True))
PART = encode_answer(SyncAnswer("manifest-part", states=[FILE, TOMBSTONE]))
END = encode_answer(SyncAnswer("manifest-end", applied={OTHER: 2}))


def set_row(index, position, value):
    return lambda head: head["rows"][index].__setitem__(position, value)


REFUSED_REQUESTS = [
    ("no-frames", [], r"^frames: expected a non-empty list"),
    ("not-bytes", ['{"type":"manifest"}'], r"^frame 0: expected bytes, got str$"),
    ("not-json", [b"catchup please"], r"^header: not JSON"),
    ("json-array", [b"[]"], r"^header: expected a JSON object, got list$"),
    ("nan", [b'{"type":"catchup","limit":NaN}'], r"^header: NaN is not allowed in JSON$"),
    ("duplicate-field", [b'{"type":"ack","type":"fetch"}'],
     r"^header: field 'type' appears twice$"),
    ("extra-frame", CATCHUP + [b""], r"^request: carries 1 frames after its header, "
                                      r"expected none$"),
    ("type-missing", changed(CATCHUP, drop_field("type")), r"^type: unknown request type None$"),
    ("type-unknown", changed(CATCHUP, set_field("type", "catch-up")),
     r"^type: unknown request type 'catch-up'$"),
    ("type-an-answer", changed(CATCHUP, set_field("type", "caught-up")),
     r"^type: unknown request type 'caught-up'$"),
    ("node-missing", changed(CATCHUP, drop_field("node")),
     r"^node: missing from request 'catchup'$"),
    ("node-short", changed(ACK, set_field("node", "abc")),
     r"^node: expected 32 lowercase hex digits, got 'abc'$"),
    ("node-uppercase", changed(ACK, set_field("node", NODE.upper())),
     r"^node: expected 32 lowercase hex digits"),
    ("node-integer", changed(ACK, set_field("node", 7)),
     r"^node: expected 32 lowercase hex digits, got 7$"),
    ("applied-missing", changed(CATCHUP, drop_field("applied")),
     r"^applied: missing from request 'catchup'$"),
    ("applied-in-a-fetch", changed(FETCH, set_field("applied", {})),
     r"^applied: not allowed in request 'fetch'$"),
    ("applied-a-list", changed(ACK, set_field("applied", [[OTHER, 3]])),
     r"^applied: expected an object, got list$"),
    ("applied-bad-origin", changed(ACK, set_field("applied", {"node-b": 3})),
     r"^applied: expected 32 lowercase hex digits, got 'node-b'$"),
    ("applied-negative", changed(ACK, set_field("applied", {OTHER: -1})),
     rf"^applied\['{OTHER}'\]: expected an integer in 0\.\."),
    ("applied-true", changed(ACK, set_field("applied", {OTHER: True})),
     rf"^applied\['{OTHER}'\]: expected an integer"),
    ("applied-string", changed(ACK, set_field("applied", {OTHER: "3"})),
     rf"^applied\['{OTHER}'\]: expected an integer"),
    ("applied-too-big", changed(ACK, set_field("applied", {OTHER: 1 << 63})),
     rf"^applied\['{OTHER}'\]: expected an integer"),
    ("limit-missing", changed(CATCHUP, drop_field("limit")),
     r"^limit: missing from request 'catchup'$"),
    ("limit-zero", changed(CATCHUP, set_field("limit", 0)),
     r"^limit: expected an integer in 1\.\.\d+, got 0$"),
    ("limit-negative", changed(CATCHUP, set_field("limit", -5)), r"^limit: expected an integer"),
    ("limit-string", changed(CATCHUP, set_field("limit", "50")), r"^limit: expected an integer"),
    ("limit-float", changed(CATCHUP, set_field("limit", 50.0)), r"^limit: expected an integer"),
    ("limit-true", changed(CATCHUP, set_field("limit", True)), r"^limit: expected an integer"),
    ("limit-in-an-ack", changed(ACK, set_field("limit", 5)),
     r"^limit: not allowed in request 'ack'$"),
    ("paths-missing", changed(FETCH, drop_field("paths")),
     r"^paths: missing from request 'fetch'$"),
    ("paths-in-a-catchup", changed(CATCHUP, set_field("paths", [])),
     r"^paths: not allowed in request 'catchup'$"),
    ("paths-a-string", changed(FETCH, set_field("paths", "a.jpg")),
     r"^paths: expected a list, got str$"),
    ("paths-too-many", changed(FETCH, set_field("paths", ["a"] * (MAX_FETCH_PATHS + 1))),
     rf"^paths: {MAX_FETCH_PATHS + 1} paths exceed the limit of {MAX_FETCH_PATHS}$"),
    ("path-escaping", changed(FETCH, set_field("paths", ["a.jpg", "../../etc/passwd"])),
     r"^paths\[1\]: .*'\.\.' components are not allowed"),
    ("path-absolute", changed(FETCH, set_field("paths", ["/etc/passwd"])), r"^paths\[0\]"),
    ("path-empty-component", changed(FETCH, set_field("paths", ["a//b.jpg"])),
     r"^paths\[0\]: empty path components are not allowed"),
    ("path-not-nfc", changed(FETCH, set_field("paths", ["e\u0301.jpg"])),
     r"^paths\[0\]: 'e\u0301\.jpg' is not in its clean form '\u00e9\.jpg'$"),
    ("path-not-a-string", changed(FETCH, set_field("paths", [5])),
     r"^paths\[0\]: expected a string, got int$"),
]


@pytest.mark.parametrize("frames, error", [case[1:] for case in REFUSED_REQUESTS],
                         ids=[case[0] for case in REFUSED_REQUESTS])
def test_a_malformed_request_is_refused_with_its_reason(frames, error):
    with pytest.raises(InvalidMessage, match=error):
        decode_request(frames)


REFUSED_ANSWERS = [
    ("no-frames", [], r"^frames: expected a non-empty list"),
    ("not-json", [b"caught up"], r"^header: not JSON"),
    ("extra-frame", CAUGHT_UP + [b"x"], r"^answer: carries 1 frames after its header"),
    ("type-missing", changed(CAUGHT_UP, drop_field("type")), r"^type: unknown answer type None$"),
    ("type-a-file", encode_state(FILE)[:1], r"^type: unknown answer type 'file'$"),
    ("type-a-request", CATCHUP, r"^type: unknown answer type 'catchup'$"),
    ("more-missing", changed(CAUGHT_UP, drop_field("more")),
     r"^more: missing from answer 'caught-up'$"),
    ("more-an-integer", changed(CAUGHT_UP, set_field("more", 1)),
     r"^more: expected true or false, got 1$"),
    ("more-a-string", changed(CAUGHT_UP, set_field("more", "false")),
     r"^more: expected true or false, got 'false'$"),
    ("more-null", changed(CAUGHT_UP, set_field("more", None)),
     r"^more: expected true or false, got None$"),
    ("more-in-fetch-end", frames_of({"type": "fetch-end", "more": False}),
     r"^more: not allowed in answer 'fetch-end'$"),
    ("rows-missing", changed(PART, drop_field("rows")),
     r"^rows: missing from answer 'manifest-part'$"),
    ("rows-an-object", changed(PART, set_field("rows", {})), r"^rows: expected a list, got dict$"),
    ("rows-too-many", changed(PART, set_field("rows", [[]] * (MAX_MANIFEST_ROWS + 1))),
     rf"^rows: {MAX_MANIFEST_ROWS + 1} rows exceed the limit of {MAX_MANIFEST_ROWS}$"),
    ("row-not-a-list", changed(PART, set_field("rows", ["a.jpg"])),
     r"^rows\[0\]: expected \[path, hlc, origin, deleted, sha256\]$"),
    ("row-too-short", changed(PART, set_row(1, slice(4, 5), [])),
     r"^rows\[1\]: expected \[path, hlc, origin, deleted, sha256\]$"),
    ("row-path-escaping", changed(PART, set_row(0, 0, "../x.jpg")),
     r"^rows\[0\]\.path: .*'\.\.' components are not allowed"),
    ("row-hlc-negative", changed(PART, set_row(0, 1, -1)),
     r"^rows\[0\]\.hlc: expected an integer in 0\.\."),
    ("row-hlc-string", changed(PART, set_row(0, 1, "7")), r"^rows\[0\]\.hlc: expected an integer"),
    ("row-origin-bad", changed(PART, set_row(1, 2, "me")),
     r"^rows\[1\]\.origin: expected 32 lowercase hex digits, got 'me'$"),
    ("row-deleted-2", changed(PART, set_row(0, 3, 2)),
     r"^rows\[0\]\.deleted: expected an integer in 0\.\.1, got 2$"),
    ("row-deleted-string", changed(PART, set_row(0, 3, "no")),
     r"^rows\[0\]\.deleted: expected an integer"),
    ("row-sha256-short", changed(PART, set_row(0, 4, "abc")),
     r"^rows\[0\]\.sha256: expected 64 lowercase hex digits, got 'abc'$"),
    ("row-file-without-sha256", changed(PART, set_row(0, 4, "")),
     r"^rows\[0\]\.sha256: expected 64 lowercase hex digits, got ''$"),
    ("row-tombstone-sha256-null", changed(PART, set_row(1, 4, None)),
     r"^rows\[1\]\.sha256: expected 64 lowercase hex digits, got None$"),
    ("applied-missing", changed(END, drop_field("applied")),
     r"^applied: missing from answer 'manifest-end'$"),
    ("applied-in-a-part", changed(PART, set_field("applied", {})),
     r"^applied: not allowed in answer 'manifest-part'$"),
    ("applied-bad-seq", changed(END, set_field("applied", {OTHER: 1.5})),
     rf"^applied\['{OTHER}'\]: expected an integer"),
]


@pytest.mark.parametrize("frames, error", [case[1:] for case in REFUSED_ANSWERS],
                         ids=[case[0] for case in REFUSED_ANSWERS])
def test_a_malformed_answer_is_refused_with_its_reason(frames, error):
    with pytest.raises(InvalidMessage, match=error):
        decode_answer(frames)


FILE_ANSWER = encode_state(PathState("a.jpg", 5, OTHER, False, SHA, b"bytes"))
TOMBSTONE_ANSWER = encode_state(TOMBSTONE)

REFUSED_FILES = [
    ("header-only", FILE_ANSWER[:1], r"^file: expected a file header and one data frame$"),
    ("extra-frame", FILE_ANSWER + [b""], r"^file: expected a file header and one data frame$"),
    ("not-a-file", [encode_answer(SyncAnswer("fetch-end"))[0], b""],
     r"^file: expected a file header and one data frame$"),
    ("path-missing", changed(FILE_ANSWER, drop_field("path")),
     r"^file\.path: expected a string, got NoneType$"),
    ("path-escaping", changed(FILE_ANSWER, set_field("path", "a/../../b.jpg")),
     r"^file\.path: .*'\.\.' components are not allowed"),
    ("hlc-missing", changed(FILE_ANSWER, drop_field("hlc")), r"^file\.hlc: expected an integer"),
    ("origin-bad", changed(FILE_ANSWER, set_field("origin", "x")),
     r"^file\.origin: expected 32 lowercase hex digits"),
    ("deleted-missing", changed(FILE_ANSWER, drop_field("deleted")),
     r"^file\.deleted: expected an integer"),
    ("sha256-mismatch", [FILE_ANSWER[0], b"other bytes"],
     r"^file\.sha256 does not match the data$"),
    ("data-not-bytes", [FILE_ANSWER[0], "bytes"], r"^frame 1: expected bytes, got str$"),
    ("tombstone-with-data", [TOMBSTONE_ANSWER[0], b"x"], r"^file: a tombstone carries no data$"),
]


@pytest.mark.parametrize("frames, error", [case[1:] for case in REFUSED_FILES],
                         ids=[case[0] for case in REFUSED_FILES])
def test_a_malformed_file_answer_is_refused_with_its_reason(frames, error):
    with pytest.raises(InvalidMessage, match=error):
        decode_state(frames)


def test_paths_that_transliteration_would_change_are_refused_by_an_ascii_node():
    fetch = encode_request(SyncRequest("fetch", NODE, paths=["żółw.jpg"]))
    assert decode_request(fetch).paths == ("żółw.jpg",)
    with pytest.raises(InvalidMessage, match=r"^paths\[0\]: 'żółw\.jpg' is not in its clean "
                                             r"form 'zolw\.jpg'$"):
        decode_request(fetch, PathRules(transliterate=True))
    part = encode_answer(SyncAnswer("manifest-part",
                                    states=[PathState("żółw.jpg", 1, OTHER, False, SHA)]))
    with pytest.raises(InvalidMessage, match=r"^rows\[0\]\.path: 'żółw\.jpg' is not in its "):
        decode_answer(part, PathRules(transliterate=True))
