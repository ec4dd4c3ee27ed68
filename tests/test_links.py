"""The replication links' timers on a memory reactor: heartbeats and acknowledgements,
trimming, publishing what was committed, and when a catch-up is asked (again)."""

import pytest

from support.replication import OTHER, UPSTREAM, answer, heartbeat, links, sent, store

SECOND_UPSTREAM = "tcp://10.0.0.3:8086"


@pytest.fixture
def make(tmp_path):
    made = []

    def make(**settings):
        made.append(links(tmp_path / f"node{len(made)}", **settings))
        return made[-1]

    yield make
    for node in made:
        if node.running:
            node.stopService()


def started(node):
    node.startService()
    return node


def tick(node, seconds, step=0.5):
    """Move the clock on by ``seconds``, a step at a time, as a running reactor would."""
    for _ in range(round(seconds / step)):
        node.reactor.advance(step)


def caught_up(node, dealer=0):
    """Answer the outstanding catch-up: nothing more to send."""
    node.sockets.dealers[dealer].deliver(answer({"type": "caught-up", "more": False}))
    node.reactor.advance(0)


# Heartbeats and acknowledgements

def test_a_heartbeat_goes_out_at_start_and_every_interval_after(make):
    node = started(make(heartbeat=0.5))
    beats = lambda: len(sent(node.sockets.pub, "heartbeat"))  # noqa: E731
    assert beats() == 1
    node.reactor.advance(0.4)
    assert beats() == 1
    node.reactor.advance(0.1)
    assert beats() == 2
    tick(node, 2.0)
    assert beats() == 6


def test_a_heartbeat_announces_what_this_node_applied(make):
    node = started(make())
    node.sockets.subscribers[0].deliver(store(1, "a.jpg"))
    node.reactor.advance(1.0)
    beat = sent(node.sockets.pub, "heartbeat")[-1]
    assert beat["origin"] == node.replica.node
    assert beat["applied"] == {OTHER: 1}


def test_each_heartbeat_acknowledges_to_every_upstream_what_was_applied(make):
    node = started(make(subscribe=(UPSTREAM, SECOND_UPSTREAM)))
    node.sockets.subscribers[0].deliver(store(1, "a.jpg"))
    node.reactor.advance(1.0)
    for dealer in node.sockets.dealers:
        acks = sent(dealer, "ack")
        assert [ack["applied"] for ack in acks] == [{}, {OTHER: 1}]
        assert {ack["node"] for ack in acks} == {node.replica.node}


def test_the_timers_stop_with_the_service(make):
    node = started(make())
    pub, dealer = node.sockets.pub, node.sockets.dealers[0]
    node.stopService()
    before = (len(pub.sent), len(dealer.sent), list(node.io_pool.ran))
    tick(node, 120.0, step=1.0)
    assert (len(pub.sent), len(dealer.sent), node.io_pool.ran) == before
    assert not node.beat.running and not node.trimmer.running
    assert node.sockets.state == "closed"
    assert not node.apply_pool.started and not node.io_pool.started


# Trimming

@pytest.mark.parametrize("retention, interval", [
    (0.5, 1.0), (2.0, 1.0), (10.0, 5.0), (7 * 86400.0, 60.0)],
    ids=["floor", "one-second", "half-retention", "ceiling"])
def test_the_journal_is_trimmed_every_half_retention_within_1_to_60_seconds(
        make, retention, interval):
    node = started(make(retention=retention))
    trims = lambda: node.io_pool.ran.count("trim")  # noqa: E731 - in the io pool
    assert trims() == 0
    node.reactor.advance(interval - 0.25)
    assert trims() == 0
    node.reactor.advance(0.25)
    assert trims() == 1
    node.reactor.advance(interval)
    assert trims() == 2


# Publishing

def test_a_commit_is_published_once_the_reactor_runs_the_threads_notice(make):
    node = started(make())
    node.replica.tree.write([("a.jpg", b"x")], node.replica.committing)
    changes = lambda: sent(node.sockets.pub, "store")  # noqa: E731
    assert changes() == []  # the commit's thread only asked the reactor to publish
    node.reactor.advance(0)
    (published,) = changes()
    assert (published["origin"], published["seq"]) == (node.replica.node, 1)
    assert node.sockets.pub.sent[-1] == node.replica.journal.read(1)


def test_what_was_committed_before_start_is_published_at_start(make):
    node = make()
    node.replica.tree.write([("a.jpg", b"x")], node.replica.committing)
    started(node)
    assert [head["seq"] for head in sent(node.sockets.pub, "store")] == [1]


def test_nothing_is_published_once_stopped(make):
    node = started(make())
    node.stopService()
    node.replica.tree.write([("a.jpg", b"x")], node.replica.committing)
    node.reactor.advance(0)
    node._flush()
    assert sent(node.sockets.pub, "store") == []


# Catch-up requests

def test_start_asks_every_upstream_for_a_catch_up(make):
    node = started(make(subscribe=(UPSTREAM, SECOND_UPSTREAM)))
    for dealer in node.sockets.dealers:
        assert sent(dealer, "catchup") == [
            {"type": "catchup", "node": node.replica.node, "applied": {}, "limit": 50}]


def test_a_heartbeat_announcing_more_asks_again_only_once_the_request_timed_out(make):
    node = started(make(heartbeat=1.0))
    sub, dealer = node.sockets.subscribers[0], node.sockets.dealers[0]
    requests = lambda: len(sent(dealer, "catchup"))  # noqa: E731
    for _ in range(9):  # the request of the start is unanswered for ten heartbeats
        node.reactor.advance(1.0)
        sub.deliver(heartbeat({OTHER: 5}))
    assert requests() == 1
    node.reactor.advance(1.0)
    sub.deliver(heartbeat({OTHER: 5}))
    assert requests() == 2


def test_the_request_timeout_is_ten_heartbeats(make):
    node = started(make(heartbeat=0.2))
    node.reactor.advance(1.9)
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 5}))
    assert len(sent(node.sockets.dealers[0], "catchup")) == 1
    node.reactor.advance(0.1)
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 5}))
    assert len(sent(node.sockets.dealers[0], "catchup")) == 2


def test_a_heartbeat_announcing_nothing_new_asks_nothing(make):
    node = started(make())
    caught_up(node)
    sub = node.sockets.subscribers[0]
    sub.deliver(heartbeat({OTHER: 0}))
    sub.deliver(heartbeat({node.replica.node: 9}))  # this node's own writes are its own
    assert len(sent(node.sockets.dealers[0], "catchup")) == 1


def test_caught_up_with_more_asks_for_the_next_batch_at_once(make):
    node = started(make())
    dealer = node.sockets.dealers[0]
    dealer.deliver(answer({"type": "caught-up", "more": True}))
    assert len(sent(dealer, "catchup")) == 1  # not before the replayed changes are applied
    node.reactor.advance(0)
    assert len(sent(dealer, "catchup")) == 2


def test_a_gap_after_a_catch_up_asks_at_once(make):
    node = started(make())
    caught_up(node)
    node.sockets.subscribers[0].deliver(store(2, "later.jpg"))
    node.reactor.advance(0)
    (_, again) = sent(node.sockets.dealers[0], "catchup")
    assert again["applied"] == {}


def test_replayed_changes_are_applied_and_counted_before_the_catch_up_ends(make):
    from twisted.logger import capturedLogs, formatEvent

    node = started(make())
    dealer = node.sockets.dealers[0]
    with capturedLogs() as events:
        dealer.deliver(store(1, "r/1.jpg"))
        dealer.deliver(store(2, "r/2.jpg"))
        dealer.deliver(answer({"type": "caught-up", "more": False}))
        node.reactor.advance(0)
    assert node.replica.applied() == {OTHER: 2}
    assert node.replica.tree.read("r/2.jpg") == b"data"
    assert f"caught up 2 messages from {UPSTREAM} in 0.0 s" in [formatEvent(e) for e in events]
    assert node.sync.catching_up == {}


def test_live_messages_are_applied_in_arrival_order_on_the_apply_pool(make):
    node = started(make())
    sub = node.sockets.subscribers[0]
    sub.deliver(store(1, "a.jpg"))
    sub.deliver(store(2, "b.jpg"))
    assert node.apply_pool.ran == ["apply", "apply"]
    assert node.replica.applied() == {OTHER: 2}


def test_an_answered_request_s_timeout_does_not_free_the_next_request(make):
    node = started(make(heartbeat=1.0))
    sub, dealer = node.sockets.subscribers[0], node.sockets.dealers[0]
    caught_up(node)  # the request of the start, answered at once
    node.reactor.advance(2.0)
    sub.deliver(store(2, "later.jpg"))  # a gap: the second request, at 2 s
    node.reactor.advance(0)
    assert len(sent(dealer, "catchup")) == 2
    node.reactor.advance(9.0)  # past the first request's timeout, not the second's
    sub.deliver(heartbeat({OTHER: 5}))
    assert len(sent(dealer, "catchup")) == 2
    node.reactor.advance(1.0)  # the second request's timeout
    sub.deliver(heartbeat({OTHER: 5}))
    assert len(sent(dealer, "catchup")) == 3


def test_stopping_leaves_no_request_timeout_behind(make):
    node = started(make(heartbeat=1.0))
    assert node.sync.catching_up  # the request of the start is outstanding
    node.stopService()
    assert node.sync.catching_up == {}
    assert node.reactor.getDelayedCalls() == []


# Lag: how long ago this node last held everything the peer held

def test_a_peer_never_heard_has_no_lag(make):
    node = started(make())
    assert [(peer.up, peer.silent_for, peer.lag) for peer in node.peers()] == \
        [(False, None, None)]


def test_caught_up_the_lag_is_the_age_of_the_last_heartbeat(make):
    node = started(make())
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 0}))
    node.reactor.advance(0.5)
    [peer] = node.peers()
    assert (peer.up, peer.lag) == (True, 0.5)
    tick(node, 10.0)  # the peer goes silent: what this node knows of it ages
    [peer] = node.peers()
    assert (peer.up, peer.lag) == (False, 10.5)


def test_behind_the_lag_grows_until_the_changes_are_applied(make):
    node = started(make())
    sub = node.sockets.subscribers[0]
    sub.deliver(heartbeat({OTHER: 0}))
    node.reactor.advance(1.0)
    sub.deliver(heartbeat({OTHER: 2}))  # two changes this node has not seen
    for _ in range(4):
        node.reactor.advance(1.0)
        sub.deliver(heartbeat({OTHER: 2}))
    [peer] = node.peers()
    assert (peer.up, peer.lag) == (True, 5.0)  # held all the peer held 5 s ago
    sub.deliver(store(1, "l/1.jpg"))
    sub.deliver(store(2, "l/2.jpg"))
    node.reactor.advance(0.25)
    [peer] = node.peers()
    assert peer.lag == 0.25  # the latest heartbeat is covered now


def test_a_node_behind_from_its_first_heartbeat_counts_from_that_heartbeat(make):
    node = started(make())
    node.sockets.subscribers[0].deliver(heartbeat({OTHER: 7}))
    node.reactor.advance(3.0)
    assert node.peers()[0].lag == 3.0
