"""The replica in-process: journalled local commits, ordered LWW applies, recovery, trim."""

import pytest

from imagepipe.paths import PathRules
from imagepipe.replication import messages
from imagepipe.replication.hlc import HybridClock
from imagepipe.replication.journal import Journal
from imagepipe.replication.messages import FileEntry, Message
from imagepipe.replication.replica import APPLIED, DUPLICATE, GAP, OWN, Replica
from imagepipe.replication.state import ReplicaState
from imagepipe.replication.sync_messages import PathState
from imagepipe.tree import Tree

OTHER, THIRD = "aa" * 16, "bb" * 16


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def make(tmp_path):
    wall = Wall()
    made = []

    def replica(name="node"):
        root = tmp_path / name / "root"
        root.mkdir(parents=True, exist_ok=True)
        state_dir = tmp_path / name / "state"
        made.append(Replica(Tree(str(root), 0o022), Journal(str(state_dir / "journal")),
                            ReplicaState(str(state_dir)), HybridClock(wall), PathRules()))
        return made[-1]

    replica.wall = wall
    return replica


def store(origin, seq, hlc, path, data):
    return messages.encode(Message("store", origin, seq, hlc, files=(FileEntry.of(path, data),)))


def delete(origin, seq, hlc, path):
    return messages.encode(Message("delete", origin, seq, hlc, deleted=(path,)))


def read(replica, path):
    return (replica.tree.root and open(f"{replica.tree.root}/{path}", "rb").read())


def test_a_local_write_is_journalled_recorded_and_queued(make):
    replica = make()
    replica.tree.write([("a/x.jpg", b"x1")], replica.committing)
    (entry,) = replica.journal.entries()
    message = messages.decode(replica.journal.read(entry.number))
    assert (message.type, message.origin, message.seq) == ("store", replica.node, 1)
    assert message.files[0].data == b"x1"
    assert replica.applied() == {replica.node: 1}
    assert replica.take_outbox() == [replica.journal.read(entry.number)]


def test_a_local_move_carries_the_bytes(make):
    replica = make()
    replica.tree.write([("a.jpg", b"body")], replica.committing)
    replica.tree.move([("a.jpg", "b/a.jpg")], replica.committing)
    message = messages.decode(replica.journal.read(2))
    assert message.type == "move" and message.deleted == ("a.jpg",)
    assert message.files[0].path == "b/a.jpg" and message.files[0].data == b"body"


def test_a_failed_staging_journals_nothing(make, tmp_path):
    replica = make()
    replica.tree.write([("file.jpg", b"x")], replica.committing)
    with pytest.raises(Exception):
        replica.tree.write([("file.jpg/inner.jpg", b"y")], replica.committing)
    assert replica.journal.last_number == 1 and replica.applied() == {replica.node: 1}


def test_remote_messages_apply_in_sequence_only(make):
    replica = make()
    assert replica.apply(store(OTHER, 2, 5 << 16, "x.jpg", b"2")) == GAP
    assert replica.apply(store(OTHER, 1, 4 << 16, "x.jpg", b"1")) == APPLIED
    assert replica.apply(store(OTHER, 1, 4 << 16, "x.jpg", b"1")) == DUPLICATE
    assert replica.apply(store(OTHER, 2, 5 << 16, "x.jpg", b"2")) == APPLIED
    assert read(replica, "x.jpg") == b"2"
    assert replica.apply(store(replica.node, 1, 9 << 16, "y.jpg", b"own")) == OWN
    assert len(replica.take_outbox()) == 2  # both applied messages are forwarded


def test_the_newer_version_wins_whatever_the_arrival_order(make):
    replica = make()
    replica.apply(store(OTHER, 1, 10 << 16, "same.jpg", b"newer"))
    replica.apply(store(THIRD, 1, 9 << 16, "same.jpg", b"older"))
    assert read(replica, "same.jpg") == b"newer"
    replica.apply(store(THIRD, 2, 10 << 16, "same.jpg", b"tie, higher origin"))
    assert read(replica, "same.jpg") == b"tie, higher origin"


def test_a_tombstone_stops_a_late_store(make, tmp_path):
    replica = make()
    replica.apply(store(OTHER, 1, 5 << 16, "gone.jpg", b"v1"))
    replica.apply(delete(THIRD, 1, 7 << 16, "gone.jpg"))
    replica.apply(store(OTHER, 2, 6 << 16, "gone.jpg", b"late"))
    assert not (tmp_path / "node/root/gone.jpg").exists()
    assert replica.state.version("gone.jpg")[2] == 1  # deleted


def test_local_writes_always_beat_what_was_received(make):
    replica = make()
    replica.apply(store(OTHER, 1, (2_000_000_000 * 1000) << 16, "p.jpg", b"future"))
    replica.tree.write([("p.jpg", b"local")], replica.committing)
    assert replica.state.version("p.jpg")[1] == replica.node
    assert read(replica, "p.jpg") == b"local"


def test_recover_applies_what_the_journal_has_and_the_state_lacks(make, tmp_path):
    replica = make()
    replica.journal.append(store(OTHER, 1, 3 << 16, "r/1.jpg", b"one"))
    replica.journal.append(store(OTHER, 2, 4 << 16, "r/2.jpg", b"two"))
    again = make()  # same directories: what a restart after a crash sees
    assert again.recover() == 2
    assert read(again, "r/2.jpg") == b"two" and again.applied() == {OTHER: 2}
    assert again.recover() == 0


def test_missing_for_lists_what_a_peer_lacks_and_knows_when_it_is_too_late(make):
    replica = make()
    for seq in (1, 2, 3):
        replica.apply(store(OTHER, seq, seq << 16, f"m/{seq}.jpg", b"x"))
    assert replica.missing_for({OTHER: 1}, 10) == [2, 3]
    assert replica.missing_for({}, 1) == [1]
    replica.state.set_trimmed({OTHER: 2})
    assert replica.missing_for({OTHER: 1}, 10) is None
    assert replica.missing_for({OTHER: 2}, 10) == [3]


def test_trim_waits_for_every_known_peer(make):
    replica = make()
    for seq in (1, 2, 3):
        replica.apply(store(OTHER, seq, (int(make.wall.now * 1000) << 16) + seq,
                            f"t/{seq}.jpg", b"x"))
    assert replica.trim(retention_seconds=3600, now=make.wall.now) == 0  # no peer known: retention only
    replica.record_peer("p1", {OTHER: 3})
    replica.record_peer("p2", {OTHER: 1})
    assert replica.trim(retention_seconds=3600, now=make.wall.now) == 0  # p2 lacks 2 and 3
    replica.record_peer("p2", {OTHER: 3})
    assert replica.trim(retention_seconds=3600, now=make.wall.now) == 3
    assert replica.missing_for({OTHER: 1}, 10) is None


def test_retention_trims_without_peers(make):
    replica = make()
    replica.apply(store(OTHER, 1, int(make.wall.now * 1000) << 16, "old.jpg", b"x"))
    assert replica.trim(retention_seconds=60, now=make.wall.now + 30) == 0
    assert replica.trim(retention_seconds=60, now=make.wall.now + 61) == 1


def test_full_sync_installs_winning_states_and_adopts_the_applied_sequences(make, tmp_path):
    replica = make()
    replica.apply(store(OTHER, 1, 5 << 16, "keep.jpg", b"old"))
    states = [PathState("keep.jpg", 9 << 16, THIRD, False, "0" * 64),
              PathState("dead.jpg", 9 << 16, THIRD, True, ""),
              PathState("stale.jpg", 1 << 16, THIRD, False, "0" * 64)]
    replica.apply(store(OTHER, 2, 5 << 16, "stale.jpg", b"mine is newer"))
    assert replica.wanted(states) == ["keep.jpg"]
    fetched = PathState("keep.jpg", 9 << 16, THIRD, False, "", b"new")
    assert replica.install(fetched)
    replica.finish_full_sync({THIRD: 7})
    assert read(replica, "keep.jpg") == b"new" and read(replica, "stale.jpg") == b"mine is newer"
    assert replica.applied()[THIRD] == 7
    assert replica.missing_for({}, 10) is None  # downstream peers need a full sync too
