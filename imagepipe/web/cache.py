"""The on-the-fly result cache: rendered files that nginx can serve by URL.

A result is stored at ``<root>/files/<name>.<format>``, where the name is
the request path as nginx sees it (``$uri``: percent-decoded, no dot
segments), plus ``?<query>`` for the dialects that read the query and
``@<accepted>`` when ``format:auto`` chose the format from ``Accept``; the
format's extension (the one written, not the one in the URL) gives nginx
the Content-Type.  So nginx finds a hit with ``try_files
$uri$is_args$args.jpg $uri$is_args$args.png ...`` without asking imagepipe,
and every other request reaches imagepipe, which renders, stores and
answers (or points nginx at the file with ``X-Accel-Redirect``).

``<root>/index.sqlite`` records, per name, the key of what it holds (the
source kind, ``Transform.canonical()``, the source path and the format
``auto`` chose), the source version it was rendered from, its size and when
imagepipe last used it.  Every spelling of one picture (``w:300`` and
``width:300``, a Dirpy query with its commands reordered) is its own name,
for nginx, but a new name whose key is already cached becomes a hard link
to that file (``share``): one render and one copy per picture, whatever the
URLs.

* a request whose source version changed renders again (the tree's
  version is its size and mtime, checked on every request that reaches
  imagepipe);
* replacing, moving or deleting a source in the tree (an XML-RPC call or a
  replicated write) removes its results at once (``invalidate``), so nginx
  stops serving them too;
* beyond ``max_bytes`` the least recently used results are removed down to
  90 % of the budget.  Each name counts its file in whole 4 KiB blocks plus
  512 bytes for the directory entry and index row, links included, so the
  disk used stays under the budget.  Hits served by nginx alone are seen
  through the files' access times (``relatime``: at least the first read
  after a write and one a day);
* a change of what results depend on (the ``fingerprint``: engine, default
  quality, signing keys, the dialects' settings) empties the cache when the
  node starts, so nginx never serves what the new settings would refuse or
  render differently.

Files are written to a temporary name and renamed into place, without
fsync: a cache may lose results in a crash, and ``reconcile`` drops any file
whose size the index does not confirm when the node starts.  Anything that
cannot be cached (a name too long, a full disk) is simply not cached: the
caller answers with the bytes.  Thread-safe; called from worker threads.
"""

import os
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass


TEMP_PREFIX = ".tmp-"
OLD_PREFIX = "files.old-"
_LOW_WATER = 0.9
_BLOCK = 4096
_PER_NAME = 512
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_key ON results (key);
CREATE INDEX IF NOT EXISTS results_source ON results (source);
CREATE INDEX IF NOT EXISTS results_used ON results (used);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Raised when what the files are changes, not only the index: the cache is
# emptied at start, since nginx serves its files by name without asking.
# 3: Dirpy's commands apply in the order written (rotate90 turns the other way).
_SCHEMA_VERSION = "3"


def cost(size):
    """What a name holding ``size`` bytes counts against the budget."""
    return -(-size // _BLOCK) * _BLOCK + _PER_NAME


@dataclass(frozen=True)
class Entry:
    """One cached result."""

    name: str
    key: str
    source: str
    version: str
    size: int
    format: str  # imagepipe format name (jpg, webp, ...)
    path: str  # absolute file path
    mtime: float

    @property
    def file(self):
        """The file name under ``files/``: the name and the format's extension."""
        return f"{self.name}.{self.format}"

    @property
    def etag(self):
        """The entity tag nginx gives the same file (hex mtime and size)."""
        return f'"{int(self.mtime):x}-{self.size:x}"'


class ResultCache:
    """Rendered results under ``root``, within ``max_bytes``."""

    def __init__(self, root, max_bytes, fingerprint="", clock=time.time):
        self.root = root
        self.files = os.path.join(root, "files")
        self.max_bytes = max_bytes
        self.clock = clock
        self.lock = threading.Lock()
        self.evicted = 0  # results removed to stay within the budget, since the start
        self._recent_tags = {}  # name -> [((second, size), written at)] of the last minute
        os.makedirs(self.files, exist_ok=True)
        self.db = sqlite3.connect(os.path.join(root, "index.sqlite"), isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.emptied = self._open(f"{_SCHEMA_VERSION}:{fingerprint}")
        self.total = sum(cost(size) for (size,) in self.db.execute("SELECT size FROM results"))

    def _open(self, stamp):
        """Create the index; empty the cache when ``stamp`` changed.  True if it was emptied."""
        tables = {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        old = None
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE name = 'stamp'").fetchone()
            old = row[0] if row else None
        if old == stamp:
            return False
        self.db.executescript("DROP TABLE IF EXISTS results; DROP TABLE IF EXISTS meta;")
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT INTO meta VALUES ('stamp', ?)", (stamp,))
        # Out of nginx's sight at once; reconcile deletes it in the background.
        os.rename(self.files, os.path.join(self.root, OLD_PREFIX + secrets.token_hex(6)))
        os.makedirs(self.files)
        return bool(tables)

    def close(self):
        """Close the index."""
        with self.lock:
            self.db.close()

    def _path(self, name, fmt):
        return os.path.join(self.files, f"{name}.{fmt}")

    def _entry(self, name, row):
        """The ``Entry`` of an index row if its file is in place, else forget it: None."""
        key, source, version, size, fmt = row
        path = self._path(name, fmt)
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            info = None
        if info is None or info.st_size != size:
            self._forget([name])
            return None
        return Entry(name, key, source, version, size, fmt, path, info.st_mtime)

    def lookup(self, name):
        """The ``Entry`` stored as ``name`` with its file in place, or None."""
        with self.lock:
            row = self.db.execute("SELECT key, source, version, size, format FROM results "
                                  "WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._entry(name, row)

    def touch(self, name):
        """Record a use of ``name`` (a hit served by imagepipe)."""
        with self.lock:
            self.db.execute("UPDATE results SET used = ? WHERE name = ?", (self.clock(), name))

    def share(self, name, key, version=None):
        """Make ``name`` a link to a cached result with the same ``key``; its ``Entry`` or None.

        With ``version``, only a result rendered from that source version
        counts.
        """
        with self.lock:
            rows = self.db.execute("SELECT name, key, source, version, size, format "
                                   "FROM results WHERE key = ? LIMIT 4", (key,)).fetchall()
        for row in rows:
            if version is not None and row[3] != version:
                continue
            entry = self._entry(row[0], row[1:])
            if entry is None:
                continue
            path = self._path(name, entry.format)
            if not self._place(path, lambda temp: os.link(entry.path, temp)):
                return None
            return self._index(name, key, entry.source, entry.version, entry.size,
                               entry.format, path)
        return None

    def store(self, name, key, source, version, data, fmt):
        """Write ``data`` as ``name`` and index it; the ``Entry``, or None if it cannot be.

        Not cached: a result over 90 % of the budget, a name that collides
        with another result's directory (or the other way round), or any
        failure of the file system; the caller answers with the bytes anyway.
        """
        if cost(len(data)) > self.max_bytes * _LOW_WATER:
            return None
        path = self._path(name, fmt)

        def write(temp):
            with open(temp, "xb") as handle:
                handle.write(data)
            self._distinct_tag(name, path, temp, len(data))

        if not self._place(path, write):
            return None
        return self._index(name, key, source, version, len(data), fmt, path)

    def _distinct_tag(self, name, path, temp, size):
        """Make sure ``temp``, about to replace ``name``, cannot carry a predecessor's ETag.

        The tag is nginx's: the mtime in whole seconds and the size.  A result
        rendered again within the same second to the same number of bytes
        (a source replaced, a result invalidated and rendered anew) would
        keep its tag, and a client would keep the old picture on a 304; its
        mtime is moved on by whole seconds until the tag is new.
        """
        now = os.stat(temp).st_mtime
        with self.lock:
            taken = {tag for tag, stamp in self._recent_tags.get(name, ()) if now - stamp < 60}
            try:
                taken.add((int(os.stat(path).st_mtime), os.stat(path).st_size))
            except OSError:
                pass  # nothing there yet
            second = int(now)
            while (second, size) in taken:
                second += 1
            if second != int(now):
                os.utime(temp, (now, second + (now - int(now))))
            recent = [entry for entry in self._recent_tags.get(name, ()) if now - entry[1] < 60]
            self._recent_tags[name] = recent + [((second, size), now)]
            if len(self._recent_tags) > 10_000:  # forget the names of more than a minute ago
                self._recent_tags = {key: entries for key, entries in self._recent_tags.items()
                                     if now - entries[-1][1] < 60}

    def _place(self, path, make):
        """Make a file at a temporary name with ``make(temp)``, rename it to ``path``."""
        directory = os.path.dirname(path)
        temp = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}")
        try:
            os.makedirs(directory, exist_ok=True)
            make(temp)
            os.rename(temp, path)
            return True
        except OSError:
            _unlink(temp)
            return False

    def _index(self, name, key, source, version, size, fmt, path):
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        with self.lock:
            old = self.db.execute("SELECT size, format FROM results WHERE name = ?",
                                  (name,)).fetchone()
            self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (name, key, source, version, size, fmt, self.clock()))
            self.total += cost(size) - (cost(old[0]) if old else 0)
            over = self.total > self.max_bytes
        if old and old[1] != fmt:
            _unlink(self._path(name, old[1]))
        if over:
            self.evict()
        return Entry(name, key, source, version, size, fmt, path, mtime)

    def invalidate(self, sources):
        """Remove every result rendered from any of ``sources``; return how many."""
        sources = list(sources)
        names = []
        with self.lock:
            for start in range(0, len(sources), 500):
                chunk = sources[start:start + 500]
                marks = ",".join("?" * len(chunk))
                names += [row[0] for row in self.db.execute(
                    f"SELECT name FROM results WHERE source IN ({marks})", chunk)]
        self._forget(names)
        return len(names)

    def evict(self):
        """Remove least recently used results until 90 % of ``max_bytes``; return how many."""
        removed = 0
        target = self.max_bytes * _LOW_WATER
        while True:
            with self.lock:
                excess = self.total - target
                if excess <= 0:
                    return removed
                rows = self.db.execute("SELECT name, used, format, size FROM results "
                                       "ORDER BY used LIMIT 64").fetchall()
            if not rows:
                return removed
            doomed, refreshed = [], []
            for name, used, fmt, size in rows:
                if excess <= 0:
                    break
                try:
                    read = os.stat(self._path(name, fmt), follow_symlinks=False).st_atime
                except OSError:
                    read = 0.0
                if read > used + 1:
                    refreshed.append((read, name))  # nginx served it since
                else:
                    doomed.append(name)
                    excess -= cost(size)
            with self.lock:
                self.db.executemany("UPDATE results SET used = ? WHERE name = ?", refreshed)
            self._forget(doomed)
            with self.lock:
                self.evicted += len(doomed)
            removed += len(doomed)

    def _forget(self, names):
        """Remove the files and rows of ``names`` (and directories left empty)."""
        if not names:
            return
        paths = []
        with self.lock:
            for name in names:
                row = self.db.execute("DELETE FROM results WHERE name = ? "
                                      "RETURNING size, format", (name,)).fetchone()
                if row:
                    self.total -= cost(row[0])
                    paths.append(self._path(name, row[1]))
        for path in paths:
            _unlink(path)
            self._prune(os.path.dirname(path))

    def _prune(self, directory):
        while directory != self.files and directory.startswith(self.files):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def state(self):
        """{"entries", "bytes", "budget", "evicted"}, read from the index (for /status)."""
        with self.lock:
            (entries,) = self.db.execute("SELECT COUNT(*) FROM results").fetchone()
            return {"entries": entries, "bytes": self.total, "budget": self.max_bytes,
                    "evicted": self.evicted}

    def tidy(self, log):
        """``reconcile`` once after a start, in a thread, saying what it removed."""
        stray, missing = self.reconcile()
        if stray or missing:
            log.info("result cache: removed {stray} unindexed files and {missing} entries "
                     "without a file", stray=stray, missing=missing)

    def reconcile(self, margin=10.0):
        """Make files and index agree after a restart; return (files, rows) removed.

        Files older than this call (less ``margin`` seconds, for stores in
        progress) that the index does not know or whose size it does not
        confirm, leftover temporary files and emptied caches go; rows
        without a file go.  Safe while results are being stored.
        """
        started = time.time() - margin
        for entry in os.scandir(self.root):
            if entry.name.startswith(OLD_PREFIX):
                shutil.rmtree(entry.path, ignore_errors=True)
        with self.lock:
            known = {f"{name}.{fmt}": (name, size) for name, size, fmt
                     in self.db.execute("SELECT name, size, format FROM results")}
        seen, stray = set(), 0
        for directory, dirs, names in os.walk(self.files):
            for file_name in names:
                path = os.path.join(directory, file_name)
                relative = os.path.relpath(path, self.files)
                try:
                    info = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                name, size = known.get(relative, (None, None))
                if size == info.st_size and not file_name.startswith(TEMP_PREFIX):
                    seen.add(relative)
                elif info.st_mtime < started:  # not one being written right now
                    _unlink(path)
                    stray += 1
        missing = [name for relative, (name, _) in known.items()
                   if relative not in seen
                   and not os.path.exists(os.path.join(self.files, relative))]
        self._forget(missing)
        for directory, dirs, names in os.walk(self.files, topdown=False):
            if directory != self.files and not dirs and not names:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
        return stray, len(missing)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
