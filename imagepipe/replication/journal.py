"""The journal: an append-only, checksummed log of wire messages, in segments.

Records are numbered 1, 2, 3, … across segment files named for their first
record number (20 digits, ``.seg``).  A record is ``u32 length | u32 crc32 |
body``, big-endian, where ``body`` is ``messages.pack`` of the wire frames.
Every append is written with one ``write`` and fsynced before it returns.

Opening scans every segment to rebuild the index.  In the last segment the
first record that is incomplete or fails its checks is the tail a crash tore
off, and is truncated away; anywhere else it is ``JournalCorrupt``.  Whole
segments are dropped from the front once no one needs their records.
"""

import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass

from imagepipe.replication.messages import InvalidMessage, pack, unpack

SEGMENT_BYTES = 64 * 1024 * 1024
_RECORD = struct.Struct(">II")  # length, crc32 of the body
_NAME = re.compile(r"([0-9]{20})\.seg")


class JournalCorrupt(Exception):
    """A record that cannot be the torn tail fails its checks; names the file and offset."""


@dataclass(frozen=True)
class Entry:
    """Where record ``number`` lives, and its header frame for filtering.

    ``offset`` is where the record starts in segment ``segment_first``;
    ``length`` is the length of its body.
    """

    number: int
    segment_first: int
    offset: int
    length: int
    header: bytes


def _fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread(fd, size, offset, path):
    chunks = []
    while size:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            raise JournalCorrupt(f"{path}: ends early at offset {offset}")
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _record(fd, offset, end, path):
    """``(length, frames)`` of the record at ``offset`` in a file of ``end`` bytes."""
    if end - offset < _RECORD.size:
        raise JournalCorrupt(f"{path}: incomplete record header at offset {offset}")
    length, crc = _RECORD.unpack(_pread(fd, _RECORD.size, offset, path))
    if length > end - offset - _RECORD.size:
        raise JournalCorrupt(f"{path}: record of {length} bytes at offset {offset} runs past "
                             f"the end")
    body = _pread(fd, length, offset + _RECORD.size, path)
    if zlib.crc32(body) != crc:
        raise JournalCorrupt(f"{path}: CRC mismatch in the record at offset {offset}")
    try:
        return length, unpack(body)
    except InvalidMessage as error:
        raise JournalCorrupt(f"{path}: malformed record at offset {offset}: {error}") from None


class Journal:
    """The journal in ``directory``, created if missing; appends are thread-safe."""

    def __init__(self, directory, segment_bytes=SEGMENT_BYTES):
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.torn_bytes = 0
        self._lock = threading.Lock()
        self._entries = []  # numbers first_number, first_number + 1, …
        self._segments = []  # first record number of each segment, oldest first
        self._fd = None
        self._closed_because = None
        try:
            os.makedirs(directory, mode=0o700)
            _fsync_directory(os.path.dirname(os.path.abspath(directory)))
        except FileExistsError:
            pass
        firsts = sorted(int(match[1]) for match in map(_NAME.fullmatch, os.listdir(directory))
                        if match)
        self._next = firsts[0] if firsts else 1
        self._active_size = 0
        for index, first in enumerate(firsts):
            if first != self._next:
                raise JournalCorrupt(f"{self._path(first)}: starts at record {first}, "
                                     f"expected {self._next}")
            self._active_size = self._scan(first, last=index == len(firsts) - 1)
            self._segments.append(first)
        if firsts:
            self._fd = self._open_active(firsts[-1])
        else:
            self._segments.append(1)
            self._fd = self._open_active(1)
            _fsync_directory(directory)

    def _path(self, first):
        return os.path.join(self.directory, f"{first:020d}.seg")

    def _open_active(self, first):
        return os.open(self._path(first), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                       0o600)

    def _scan(self, first, last):
        """Index the records of segment ``first``; return its size after any truncation."""
        path = self._path(first)
        fd = os.open(path, (os.O_RDWR if last else os.O_RDONLY) | os.O_CLOEXEC)
        try:
            end = os.fstat(fd).st_size
            offset = 0
            while offset < end:
                try:
                    length, frames = _record(fd, offset, end, path)
                except JournalCorrupt:
                    if not last:
                        raise
                    os.ftruncate(fd, offset)
                    os.fsync(fd)
                    self.torn_bytes = end - offset
                    return offset
                self._entries.append(Entry(self._next, first, offset, length, frames[0]))
                self._next += 1
                offset += _RECORD.size + length
            return end
        finally:
            os.close(fd)

    @property
    def last_number(self):
        """The number of the newest record; 0 when nothing was ever appended."""
        return self._next - 1

    @property
    def first_number(self):
        """The number of the oldest record kept; ``last_number + 1`` when none is."""
        with self._lock:
            return self._entries[0].number if self._entries else self._next

    def append(self, frames):
        """Write the message ``frames`` durably; return its record number."""
        body = pack(frames)
        record = _RECORD.pack(len(body), zlib.crc32(body)) + body
        with self._lock:
            if self._fd is None:
                raise ValueError(f"journal {self.directory}: {self._closed_because or 'closed'}")
            if self._active_size and self._active_size + len(record) > self.segment_bytes:
                self._roll()
            offset = self._active_size
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            except OSError:
                self._take_back(offset)
                raise
            number = self._next
            self._entries.append(Entry(number, self._segments[-1], offset, len(body),
                                       bytes(frames[0])))
            self._next += 1
            self._active_size += len(record)
            return number

    def retract(self, number):
        """Take back the newest record, ``number``, appended for a change that was undone.

        Only the newest record of the active segment can go; anything else raises
        ``ValueError``.
        """
        with self._lock:
            if (number != self._next - 1 or not self._entries
                    or self._entries[-1].number != number
                    or self._entries[-1].segment_first != self._segments[-1]):
                raise ValueError(f"journal {self.directory}: record {number} is not the "
                                 f"newest of the active segment")
            entry = self._entries.pop()
            self._take_back(entry.offset)
            self._next -= 1
            self._active_size = entry.offset

    def _roll(self):
        fd = self._open_active(self._next)
        try:
            _fsync_directory(self.directory)
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd = fd
        self._segments.append(self._next)
        self._active_size = 0

    def _take_back(self, offset):
        """Cut a failed append off the active segment, or stop appending."""
        try:
            os.ftruncate(self._fd, offset)
            os.fsync(self._fd)
        except OSError as error:
            # A partial record left in place would hide every later record
            # behind a "torn tail" at the next start.
            os.close(self._fd)
            self._fd = None
            self._closed_because = f"closed after a failed write could not be undone ({error})"

    def size_bytes(self):
        """The journal's size on disk: every segment's."""
        total = 0
        for first in list(self._segments):
            try:
                total += os.path.getsize(self._path(first))
            except OSError:
                continue  # dropped meanwhile
        return total

    def entries(self, start=1):
        """The index entries of the records numbered ``start`` and above, oldest first."""
        with self._lock:
            first = self._entries[0].number if self._entries else self._next
            return self._entries[max(0, start - first):]

    def read(self, number):
        """The frames of record ``number``; ``KeyError`` when it is not kept."""
        with self._lock:
            index = number - (self._entries[0].number if self._entries else self._next)
            if not 0 <= index < len(self._entries):
                raise KeyError(number)
            entry = self._entries[index]
            path = self._path(entry.segment_first)
            # Opened under the lock so drop_through cannot unlink it first.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            end = entry.offset + _RECORD.size + entry.length
            length, frames = _record(fd, entry.offset, end, path)
        finally:
            os.close(fd)
        if length != entry.length:
            raise JournalCorrupt(f"{path}: record at offset {entry.offset} changed length")
        return frames

    def drop_through(self, number):
        """Delete the segments whose records are all ≤ ``number``, never the active one.

        When every record may go, the active segment is closed first so that
        it can go too.

        Returns how many records went.
        """
        dropped = 0
        with self._lock:
            if number >= self._next - 1 and self._active_size and self._fd is not None:
                self._roll()  # everything may go: close the active segment so it can
            try:
                while len(self._segments) > 1 and self._segments[1] - 1 <= number:
                    first, following = self._segments[0], self._segments[1]
                    os.unlink(self._path(first))
                    del self._segments[0]
                    del self._entries[:following - first]
                    dropped += following - first
            finally:
                if dropped:
                    _fsync_directory(self.directory)
        return dropped

    def close(self):
        """Close the active segment; later appends raise ``ValueError``."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
