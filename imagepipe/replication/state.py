"""Persistent replication state: node id, applied sequences, path versions, peers.

The node id is a file of 32 hex digits, made once.  Everything else lives in
one SQLite database in WAL mode:

* ``applied``: per origin, the highest sequence applied without a gap;
* ``trimmed``: per origin, the highest sequence no longer in the journal
  (a peer below it cannot catch up from here and needs a full sync);
* ``versions``: per path, the version ``(hlc, origin)`` that last wrote or
  deleted it, whether it is deleted (a tombstone) and the sha256;
* ``peers``: what each downstream peer last said it applied.

The journal is the durable record of every change; this database may lag it
after a crash and is brought level again by replaying the journal.  Callers
serialise writes (the replica's lock).
"""

import json
import os
import secrets
import sqlite3
import time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (origin TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trimmed (origin TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    path TEXT PRIMARY KEY, hlc INTEGER NOT NULL, origin TEXT NOT NULL,
    deleted INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones ON versions (deleted, hlc);
CREATE TABLE IF NOT EXISTS peers (node TEXT PRIMARY KEY, applied TEXT NOT NULL, seen REAL NOT NULL);
"""


def node_id(directory):
    """This node's persistent id, created on first use."""
    path = os.path.join(directory, "node_id")
    try:
        with open(path, encoding="ascii") as handle:
            value = handle.read().strip()
        if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_hex(16)
    temp = path + ".tmp"
    with open(temp, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return value


class ReplicaState:
    """The SQLite side of a node's replication state."""

    def __init__(self, directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.node = node_id(directory)
        self.db = sqlite3.connect(os.path.join(directory, "state.sqlite"),
                                  check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.applied = dict(self.db.execute("SELECT origin, seq FROM applied"))
        self.trimmed = dict(self.db.execute("SELECT origin, seq FROM trimmed"))

    def close(self):
        """Close the database."""
        self.db.close()

    def version(self, path):
        """``(hlc, origin, deleted, sha256)`` of ``path``, or None if never seen."""
        row = self.db.execute("SELECT hlc, origin, deleted, sha256 FROM versions WHERE path = ?",
                              (path,)).fetchone()
        return tuple(row) if row else None

    def is_newer(self, path, hlc, origin):
        """True when version ``(hlc, origin)`` beats what ``path`` holds now."""
        current = self.version(path)
        return current is None or (hlc, origin) > (current[0], current[1])

    def record(self, origin, seq, versions):
        """Mark ``seq`` of ``origin`` applied and store path ``versions`` atomically.

        ``versions`` are ``(path, hlc, origin, deleted, sha256)`` rows.
        """
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO versions (path, hlc, origin, deleted, sha256) "
                "VALUES (?, ?, ?, ?, ?)", versions)
            if seq:
                self.db.execute("INSERT OR REPLACE INTO applied (origin, seq) VALUES (?, ?)",
                                (origin, seq))
        if seq:
            # A new dict, not a change to the old one: readers on other threads
            # take ``applied`` without the replica's lock and see one whole state.
            self.applied = {**self.applied, origin: seq}

    def set_applied(self, applied):
        """Raise the applied sequences to ``applied`` (after a full sync)."""
        raised = dict(self.applied)
        with self.db:
            self.db.execute("BEGIN")
            for origin, seq in applied.items():
                if seq > raised.get(origin, 0):
                    self.db.execute("INSERT OR REPLACE INTO applied (origin, seq) VALUES (?, ?)",
                                    (origin, seq))
                    raised[origin] = seq
        self.applied = raised

    def set_trimmed(self, trimmed):
        """Remember, per origin, the highest sequence dropped from the journal."""
        with self.db:
            self.db.execute("BEGIN")
            for origin, seq in trimmed.items():
                if seq > self.trimmed.get(origin, 0):
                    self.db.execute("INSERT OR REPLACE INTO trimmed (origin, seq) VALUES (?, ?)",
                                    (origin, seq))
                    self.trimmed[origin] = seq

    def max_hlc(self):
        """The highest timestamp any path version holds (0 when none)."""
        return self.db.execute("SELECT COALESCE(MAX(hlc), 0) FROM versions").fetchone()[0]

    def manifest(self):
        """Every path version, tombstones included, as tuples."""
        return [tuple(row) for row in self.db.execute(
            "SELECT path, hlc, origin, deleted, sha256 FROM versions ORDER BY path")]

    def purge_tombstones(self, before_hlc):
        """Forget tombstones older than ``before_hlc``; return how many."""
        with self.db:
            cursor = self.db.execute("DELETE FROM versions WHERE deleted = 1 AND hlc < ?",
                                     (before_hlc,))
        return cursor.rowcount

    def set_peer(self, node, applied):
        """Record what peer ``node`` says it applied."""
        self.db.execute("INSERT OR REPLACE INTO peers (node, applied, seen) VALUES (?, ?, ?)",
                        (node, json.dumps(applied, sort_keys=True), time.time()))

    def peers(self):
        """``{node: (applied dict, last seen)}`` of every peer that ever acknowledged."""
        return {node: (json.loads(applied), seen) for node, applied, seen in
                self.db.execute("SELECT node, applied, seen FROM peers")}
