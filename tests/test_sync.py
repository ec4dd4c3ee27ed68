"""The catch-up and full-sync conversations on a memory reactor: what a node asks its
upstream for, and what it answers a downstream peer."""

import hashlib
import json
import os

import pytest
from twisted.logger import capturedLogs, formatEvent

from support.replication import OTHER, UPSTREAM, answer, heartbeat, links, sent, store

PEER = "cc" * 16  # a downstream peer's node id
KEEP, GONE = b"kept bytes", "f/gone.jpg"


@pytest.fixture
def node(tmp_path):
    made = links(tmp_path / "node")
    made.startService()
    yield made
    made.stopService()


def row(path, hlc, deleted=False, data=b""):
    return [path, hlc, OTHER, int(deleted), "" if deleted else hashlib.sha256(data).hexdigest()]


def file_answer(path, hlc, data):
    head = {"type": "file", "path": path, "hlc": hlc, "origin": OTHER, "deleted": False,
            "sha256": hashlib.sha256(data).hexdigest()}
    return answer(head, data)


def ask(node, request):
    """Send ``request`` from a downstream peer; return the frames answered, identity cut."""
    server = node.sockets.server
    before = len(server.sent)
    server.deliver([b"peer", json.dumps(request).encode("utf-8")])
    node.reactor.advance(0)
    answered = server.sent[before:]
    assert all(frames[0] == b"peer" for frames in answered)
    return [frames[1:] for frames in answered]


def on_disk(node, path):
    return os.path.exists(os.path.join(node.replica.tree.root, path))


def heads(answers):
    return [json.loads(frames[0]) for frames in answers]


def write(node, *paths):
    for path in paths:
        node.replica.tree.write([(path, path.encode())], node.replica.committing)
    node.reactor.advance(0)


# Full sync, as the asking side

def full_sync_to_fetch(node):
    """Bring ``node`` through full-sync-needed and a manifest to its fetch request."""
    node.replica.tree.write([(GONE, b"old")], node.replica.committing)
    later = node.replica.clock.now() + 1  # than the local write of GONE
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "full-sync-needed"}))
    dealer.deliver(answer({"type": "manifest-part", "rows": [row("f/keep.jpg", 5 << 16,
                                                                 data=KEEP)]}))
    dealer.deliver(answer({"type": "manifest-part", "rows": [row(GONE, later, deleted=True)]}))
    dealer.deliver(answer({"type": "manifest-end", "applied": {OTHER: 7}}))
    node.reactor.advance(0)
    return dealer


def test_full_sync_needed_asks_for_the_manifest(node):
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "full-sync-needed"}))
    assert sent(dealer, "manifest") == [{"type": "manifest", "node": node.replica.node}]


def test_the_manifest_applies_winning_tombstones_and_fetches_what_differs(node):
    dealer = full_sync_to_fetch(node)
    assert sent(dealer, "fetch") == [{"type": "fetch", "node": node.replica.node,
                                      "paths": ["f/keep.jpg"]}]
    assert not on_disk(node, GONE)


def test_the_fetched_files_land_then_the_manifest_counts_as_applied(node):
    dealer = full_sync_to_fetch(node)
    with capturedLogs() as events:
        dealer.deliver(file_answer("f/keep.jpg", 5 << 16, KEEP))
        dealer.deliver(answer({"type": "fetch-end"}))
        node.reactor.advance(0)
    assert node.replica.tree.read("f/keep.jpg") == KEEP
    assert node.replica.applied()[OTHER] == 7
    assert f"full sync from {UPSTREAM} done" in [formatEvent(e) for e in events]
    assert sent(dealer, "catchup")[-1]["applied"][OTHER] == 7  # and live again


def test_a_full_sync_fetches_at_most_100_paths_at_a_time(node):
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "full-sync-needed"}))
    rows = [row(f"many/{index:03d}.jpg", 5 << 16, data=b"x") for index in range(250)]
    dealer.deliver(answer({"type": "manifest-part", "rows": rows}))
    dealer.deliver(answer({"type": "manifest-end", "applied": {OTHER: 1}}))
    node.reactor.advance(0)
    for _ in range(2):
        dealer.deliver(answer({"type": "fetch-end"}))
        node.reactor.advance(0)
    assert [len(fetch["paths"]) for fetch in sent(dealer, "fetch")] == [100, 100, 50]
    assert sent(dealer, "fetch")[2]["paths"][-1] == "many/249.jpg"


def test_no_catch_up_is_asked_while_a_full_sync_is_under_way(node):
    dealer = full_sync_to_fetch(node)
    node.reactor.advance(10.0)  # the first request has timed out
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 9}))
    assert len(sent(dealer, "catchup")) == 1


@pytest.mark.parametrize("bad", [
    answer({"type": "manifest-part", "rows": [["../escape.jpg", 1, OTHER, 0, "0" * 64]]}),
    answer({"type": "manifest-part", "rows": "all of them"}),
], ids=["escaping-path", "rows-not-a-list"])
def test_a_bad_manifest_part_fails_the_sync_which_starts_over(node, bad):
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "full-sync-needed"}))
    dealer.deliver(bad)
    with capturedLogs() as events:
        dealer.deliver(answer({"type": "manifest-end", "applied": {OTHER: 1}}))
        node.reactor.advance(0)
    assert any("failed; will start over" in formatEvent(e) for e in events)
    assert sent(dealer, "fetch") == []
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 9}))
    assert len(sent(dealer, "catchup")) == 2  # asked again, without waiting for the timeout


def test_a_malformed_manifest_end_drops_the_sync_which_starts_over(node):
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "full-sync-needed"}))
    with capturedLogs() as events:
        dealer.deliver(answer({"type": "manifest-end", "applied": ["not", "a", "map"]}))
    assert any("bad answer from" in formatEvent(e) for e in events)
    assert node.sync.syncing == {}
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 9}))
    assert len(sent(dealer, "catchup")) == 2


def test_a_malformed_caught_up_is_dropped(node):
    dealer = node.sockets.dealers[0]
    with capturedLogs() as events:
        dealer.deliver(answer({"type": "caught-up", "more": "yes"}))
        node.reactor.advance(0)
    assert any("more: expected true or false" in formatEvent(e) for e in events)
    assert UPSTREAM in node.sync.catching_up  # the request times out as if unanswered


def test_answers_of_a_full_sync_not_under_way_are_ignored(node):
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "manifest-end", "applied": {OTHER: 3}}))
    dealer.deliver(file_answer("x.jpg", 1, b"x"))
    dealer.deliver(answer({"type": "fetch-end"}))
    node.reactor.advance(0)
    assert node.replica.applied() == {} and not on_disk(node, "x.jpg")


# Answering a downstream peer

def test_a_catch_up_is_answered_with_the_journal_then_caught_up(node):
    write(node, "a.jpg", "b.jpg", "c.jpg")
    answers = ask(node, {"type": "catchup", "node": PEER, "applied": {node.replica.node: 1},
                         "limit": 50})
    assert answers[:2] == [node.replica.journal.read(2), node.replica.journal.read(3)]
    assert heads(answers[2:]) == [{"type": "caught-up", "more": False}]
    assert node.io_pool.ran[-1] == "_replay"


def test_a_catch_up_answer_holds_at_most_the_batch_asked_and_at_most_50(node):
    write(node, *[f"w/{index}.jpg" for index in range(51)])
    small = ask(node, {"type": "catchup", "node": PEER, "applied": {}, "limit": 2})
    assert len(small) == 3 and heads(small[2:]) == [{"type": "caught-up", "more": True}]
    large = ask(node, {"type": "catchup", "node": PEER, "applied": {}, "limit": 1000})
    assert len(large) == 51 and heads(large[50:]) == [{"type": "caught-up", "more": True}]


def test_a_peer_behind_the_trimmed_journal_is_told_to_full_sync(node):
    write(node, "a.jpg")
    node.replica.state.set_trimmed({node.replica.node: 1})
    answers = ask(node, {"type": "catchup", "node": PEER, "applied": {}, "limit": 50})
    assert heads(answers) == [{"type": "full-sync-needed"}]


def test_the_manifest_comes_in_parts_of_at_most_2000_rows_then_its_end(node):
    rows = [(f"m/{index:04d}.jpg", 1 << 16, OTHER, 0, "0" * 64) for index in range(2001)]
    node.replica.state.record(OTHER, 4, rows)
    answers = heads(ask(node, {"type": "manifest", "node": PEER}))
    assert [head["type"] for head in answers] == ["manifest-part", "manifest-part", "manifest-end"]
    assert [len(head["rows"]) for head in answers[:2]] == [2000, 1]
    assert answers[1]["rows"] == [["m/2000.jpg", 1 << 16, OTHER, 0, "0" * 64]]
    assert answers[2]["applied"] == {OTHER: 4}


def test_a_fetch_is_answered_with_each_known_path_then_fetch_end(node):
    write(node, "a.jpg")
    answers = ask(node, {"type": "fetch", "node": PEER, "paths": ["a.jpg", "unknown.jpg"]})
    head, data = answers[0]
    assert json.loads(head)["path"] == "a.jpg" and data == b"a.jpg"
    assert heads(answers[1:]) == [{"type": "fetch-end"}]


def test_an_ack_is_recorded_for_trimming(node):
    assert ask(node, {"type": "ack", "node": PEER, "applied": {OTHER: 3}}) == []
    assert node.replica.state.peers()[PEER][0] == {OTHER: 3}


@pytest.mark.parametrize("request_", [
    {"type": "catchup", "node": PEER, "applied": {}, "limit": "50"},
    {"type": "fetch", "node": PEER, "paths": ["../../etc/passwd"]},
    {"type": "fetch", "node": PEER, "paths": ["a.jpg"] * 101},
    {"type": "ack", "node": "somebody", "applied": {}},
    {"type": "rewind", "node": PEER},
], ids=["limit-a-string", "escaping-path", "too-many-paths", "bad-node", "unknown-type"])
def test_a_malformed_request_is_dropped_with_a_warning(node, request_):
    with capturedLogs() as events:
        assert ask(node, request_) == []
    assert any("dropped a malformed sync request" in formatEvent(e) for e in events)
    assert node.io_pool.ran.count("record_peer") == 0


def test_a_replayed_change_is_taken_as_a_live_one(node):
    node.sockets.dealers[0].deliver(store(1, "r.jpg"))
    assert node.replica.tree.read("r.jpg") == b"data"
    assert node.sync.replayed == {UPSTREAM: 1}
