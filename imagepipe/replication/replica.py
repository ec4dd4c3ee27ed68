"""A node's replicated tree: local commits, remote applies, catch-up, trimming.

``Replica`` is the thread-side half of replication (no Twisted, no ZeroMQ).
Under one lock it numbers and journals each local change before the files
are renamed into place (durable before acknowledged), applies messages from
other origins in sequence order with last-writer-wins by ``(hlc, origin)``,
and queues every committed message in ``outbox`` for the links to publish
(a local write, or a forwarded one).  At start-up it re-applies journal
records that the state database had not recorded yet.
"""

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

from imagepipe.errors import ImagepipeError, OperationFailed, Undone
from imagepipe.replication import messages
from imagepipe.replication.hlc import wall_ms
from imagepipe.replication.messages import FileEntry, InvalidMessage, Message
from imagepipe.replication.sync_messages import PathState

APPLIED, DUPLICATE, GAP, OWN = "applied", "duplicate", "gap", "own"


@dataclass(frozen=True)
class Indexed:
    """Where a journal record sits, and whose message it is."""

    number: int
    origin: str
    seq: int
    hlc: int


class Replica:
    """Journal + state + tree of one node, safe to call from several threads."""

    def __init__(self, tree, journal, state, clock, rules, notify=None, forward=True):
        self.tree = tree
        self.journal = journal
        self.state = state
        self.clock = clock
        self.rules = rules
        self.node = state.node
        self.lock = threading.RLock()
        self.outbox = deque()  # wire frames committed here, in commit order
        self.notify = notify or (lambda: None)  # called (from any thread) after outbox grows
        self.forward = forward  # re-publish what peers send (rings need it; meshes do not)
        self.index = []  # Indexed, in journal order
        self.broken = None  # the error that made local writes unsafe
        for entry in journal.entries():
            self._index(entry.number, entry.header)
        self.clock.observe(max([self.state.max_hlc()] + [i.hlc for i in self.index]))

    def _index(self, number, header_frame):
        head = messages.header([header_frame])
        self.index.append(Indexed(number, head["origin"], head["seq"], head["hlc"]))

    # Local changes -------------------------------------------------------

    @contextmanager
    def committing(self, change):
        """Journal ``change`` as the next local message; the caller commits inside.

        Used as the ``commit`` of ``Tree.write/move/delete``: the message is
        journalled and fsynced before the files move into place, recorded
        and queued for publication after.
        """
        with self.lock:
            if self.broken:
                raise OperationFailed("node cannot write: its storage failed (see the log)")
            seq = self.state.applied.get(self.node, 0) + 1
            hlc = self.clock.now()
            message = self._local_message(change, seq, hlc)
            frames = messages.encode(message)
            number = self.journal.append(frames)
            self.index.append(Indexed(number, self.node, seq, hlc))
            try:
                yield message
            except Undone:
                # The storage is as it was (a bucket took back what it wrote):
                # so is the journal, and nothing is published.
                self.journal.retract(number)
                self.index.pop()
                raise
            except ImagepipeError:
                # The journal has the change but the tree does not: redo it from
                # the journal's copy, or stop writing rather than diverge.
                try:
                    self._replay_local(message)
                except Exception as error:
                    self.broken = error
                    raise
            else:
                self.state.record(self.node, seq, _versions(message))
            self.outbox.append(frames)
        self.notify()

    def _local_message(self, change, seq, hlc):
        if change.operation == "store":
            files = tuple(FileEntry.of(w.path, w.data) for w in change.written)
            return Message("store", self.node, seq, hlc, files=files)
        if change.operation == "move":
            moves = [(src, dst) for src, dst in change.moved if src != dst]
            files = tuple(FileEntry.of(dst, self.tree.read(src, "src_path"))
                          for src, dst in moves)
            return Message("move", self.node, seq, hlc, files=files,
                           deleted=tuple(src for src, _ in moves))
        return Message("delete", self.node, seq, hlc, deleted=change.deleted)

    # Remote messages -----------------------------------------------------

    def apply(self, frames):
        """Apply one received message; return APPLIED, DUPLICATE, GAP or OWN.

        Its own messages and ones already applied are recognised from the
        header alone, before the files are checked.  Raises
        ``InvalidMessage`` for a message that fails validation, and
        ``ImagepipeError`` when the tree refuses the change (it is then not
        recorded, and will be asked for again).
        """
        head = messages.header(frames)
        if head.get("origin") == self.node:
            return OWN
        seq = head.get("seq")
        if type(seq) is int and seq <= self.applied().get(head.get("origin"), 0):
            return DUPLICATE
        message = messages.decode(frames, self.rules)
        if message.type == "heartbeat":
            raise InvalidMessage("a heartbeat is not a change")
        with self.lock:
            applied = self.state.applied.get(message.origin, 0)
            if message.seq <= applied:
                return DUPLICATE
            if message.seq != applied + 1:
                return GAP
            self.clock.observe(message.hlc)
            number = self.journal.append(frames)
            self.index.append(Indexed(number, message.origin, message.seq, message.hlc))
            self._apply(message)
            if self.forward:
                self.outbox.append(frames)
        self.notify()
        return APPLIED

    def _apply(self, message):
        """Change the tree as far as ``message`` wins, then record it."""
        version = (message.hlc, message.origin)
        deletions = [path for path in message.deleted if self.state.is_newer(path, *version)]
        stores = [entry for entry in message.files if self.state.is_newer(entry.path, *version)]
        if deletions:
            self.tree.delete(deletions)
        if stores:
            self.tree.write([(entry.path, entry.data) for entry in stores])
        rows = [(path, message.hlc, message.origin, 1, "") for path in deletions]
        rows += [(e.path, message.hlc, message.origin, 0, e.sha256) for e in stores]
        self.state.record(message.origin, message.seq, rows)

    def recover(self):
        """Apply journal records the state does not show as applied; return how many."""
        count = 0
        with self.lock:
            for item in list(self.index):
                if item.seq != self.state.applied.get(item.origin, 0) + 1:
                    continue
                message = messages.decode(self.journal.read(item.number), self.rules)
                if message.origin == self.node:
                    self._replay_local(message)
                else:
                    self._apply(message)
                count += 1
        return count

    def _replay_local(self, message):
        """Re-do a local change journalled just before a crash (idempotent)."""
        if message.deleted:
            self.tree.delete(list(message.deleted))
        if message.files:
            self.tree.write([(entry.path, entry.data) for entry in message.files])
        self.state.record(self.node, message.seq, _versions(message))

    # Serving peers ---------------------------------------------------------

    def applied(self):
        """A copy of the applied sequence per origin.

        Without the lock: the state replaces its ``applied`` dict whole, so
        the reactor never waits for an apply holding the lock across fsyncs.
        """
        return dict(self.state.applied)

    def heartbeat(self):
        """The wire frames of a heartbeat announcing what this node applied (lock-free too)."""
        applied = tuple(sorted(self.state.applied.items()))
        return messages.encode(Message("heartbeat", self.node, 0, self.clock.now(),
                                       applied=applied))

    def missing_for(self, applied, limit):
        """Journal numbers a peer that applied ``applied`` lacks, at most ``limit``.

        Returns None when this journal no longer reaches back far enough for
        some origin (the peer needs a full sync).
        """
        with self.lock:
            for origin, seq in self.state.trimmed.items():
                if applied.get(origin, 0) < seq:
                    return None
            wanted = [item.number for item in self.index
                      if item.seq > applied.get(item.origin, 0)]
        return wanted[:limit]

    # Full sync ---------------------------------------------------------------

    def manifest(self):
        """``(rows, applied)``: every path version here, and the sequences they reflect."""
        with self.lock:
            return [list(row) for row in self.state.manifest()], dict(self.state.applied)

    def path_state(self, path):
        """The current ``PathState`` of ``path`` with its bytes, or None if never seen."""
        with self.lock:
            version = self.state.version(path)
            if version is None:
                return None
            hlc, origin, deleted, sha256 = version
            data = b""
            if not deleted:
                try:
                    data = self.tree.read(path)
                except ImagepipeError:
                    return None
            return PathState(path, hlc, origin, bool(deleted), sha256, data)

    def wanted(self, states):
        """Of an upstream's manifest, the paths whose content this node must fetch.

        Tombstones that win are applied at once (they need no bytes).
        """
        fetch = []
        for state in states:
            with self.lock:
                if not self.state.is_newer(state.path, state.hlc, state.origin):
                    continue
                if state.deleted:
                    self._install(state)
                else:
                    fetch.append(state.path)
        return fetch

    def install(self, state):
        """Apply one fetched ``PathState`` if it still wins; True when it did."""
        with self.lock:
            if not self.state.is_newer(state.path, state.hlc, state.origin):
                return False
            self._install(state)
            return True

    def _install(self, state):
        self.clock.observe(state.hlc)
        if state.deleted:
            self.tree.delete([state.path])
        else:
            self.tree.write([(state.path, state.data)])
        self.state.record(state.origin, 0, [tuple(state.row())])

    def finish_full_sync(self, applied):
        """Adopt the upstream's applied sequences once its files are all here.

        The records below them never reach this journal, so they count as
        trimmed: a downstream peer behind them needs a full sync from here too.
        """
        with self.lock:
            self.state.set_applied(applied)
            self.state.set_trimmed(applied)

    def take_outbox(self):
        """Every committed message not yet published, oldest first."""
        taken = []
        while self.outbox:
            taken.append(self.outbox.popleft())
        return taken

    def record_peer(self, node, applied):
        """Remember what a downstream peer applied (for trimming)."""
        with self.lock:
            self.state.set_peer(node, applied)

    def trim(self, retention_seconds, now=None):
        """Drop journal segments every known peer has, or older than retention."""
        now = time.time() if now is None else now
        horizon = int((now - retention_seconds) * 1000)
        with self.lock:
            peers = [applied for applied, _ in self.state.peers().values()]
            keep_from = None
            for item in self.index:
                # With no peer known yet, only retention may trim.
                acknowledged = bool(peers) and all(p.get(item.origin, 0) >= item.seq
                                                   for p in peers)
                expired = wall_ms(item.hlc) < horizon
                if not (acknowledged or expired):
                    keep_from = item.number
                    break
            last = (keep_from - 1) if keep_from is not None else self.journal.last_number
            dropped = self.journal.drop_through(last) if last > 0 else 0
            if dropped:
                gone = [item for item in self.index if item.number < self.journal.first_number]
                trimmed = {}
                for item in gone:
                    trimmed[item.origin] = max(trimmed.get(item.origin, 0), item.seq)
                self.state.set_trimmed(trimmed)
                self.index = [i for i in self.index if i.number >= self.journal.first_number]
            self.state.purge_tombstones(horizon << 16)
        return dropped


def _versions(message):
    rows = [(path, message.hlc, message.origin, 1, "") for path in message.deleted]
    rows += [(e.path, message.hlc, message.origin, 0, e.sha256) for e in message.files]
    return rows

