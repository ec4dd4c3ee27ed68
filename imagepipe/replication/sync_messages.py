"""The sync conversation's messages: path states and ``file`` answers.

A full sync transfers each path's current version as a ``PathState``: a
manifest row (``[path, hlc, origin, deleted, sha256]``) in a manifest part,
or a ``file`` answer carrying its bytes (``docs/replication.md``).  The
decoders check every field (types, ranges, paths by the same rules as
client paths, sha256) and raise ``InvalidMessage`` on anything malformed.

Pure: no sockets, no files, no reactor.
"""

import hashlib
from dataclasses import dataclass

from imagepipe.errors import InvalidMessage
from imagepipe.paths import PathRules
from imagepipe.replication.messages import (
    INT_LIMIT, check_integer, check_origin, check_path, check_sha256, header, json_frame)


@dataclass(frozen=True)
class PathState:
    """One path's current version, as a full sync transfers it: bytes or a tombstone."""

    path: str
    hlc: int
    origin: str
    deleted: bool
    sha256: str  # "" for a tombstone
    data: bytes = b""

    def row(self):
        """The manifest row ``[path, hlc, origin, deleted, sha256]``."""
        return [self.path, self.hlc, self.origin, int(self.deleted), self.sha256]



def encode_state(state):
    """Frames of a full-sync ``file`` answer: JSON header, then the bytes."""
    head = {"type": "file", "path": state.path, "hlc": state.hlc, "origin": state.origin,
            "deleted": state.deleted, "sha256": state.sha256}
    return [json_frame(head), state.data]



def decode_state(frames, rules=PathRules()):
    """The ``PathState`` in a ``file`` answer, checked like a message, or ``InvalidMessage``."""
    head = header(frames)
    if head.get("type") != "file" or len(frames) != 2:
        raise InvalidMessage("file: expected a file header and one data frame")
    state = state_from_row([head.get("path"), head.get("hlc"), head.get("origin"),
                            head.get("deleted"), head.get("sha256")], rules, "file")
    data = frames[1]
    if not isinstance(data, bytes):
        raise InvalidMessage(f"frame 1: expected bytes, got {type(data).__name__}")
    if state.deleted and data:
        raise InvalidMessage("file: a tombstone carries no data")
    if not state.deleted and hashlib.sha256(data).hexdigest() != state.sha256:
        raise InvalidMessage("file.sha256 does not match the data")
    return PathState(state.path, state.hlc, state.origin, state.deleted, state.sha256, data)


def state_from_row(row, rules=PathRules(), name="row"):
    """A manifest row checked into a ``PathState`` (without data), or ``InvalidMessage``."""
    if not isinstance(row, list) or len(row) != 5:
        raise InvalidMessage(f"{name}: expected [path, hlc, origin, deleted, sha256]")
    path, hlc, origin, deleted, sha256 = row
    deleted = bool(check_integer(int(deleted) if isinstance(deleted, bool) else deleted,
                                 f"{name}.deleted", 0, 2))
    if not (deleted and sha256 == ""):
        check_sha256(sha256, f"{name}.sha256")
    return PathState(check_path(path, f"{name}.path", rules),
                     check_integer(hlc, f"{name}.hlc", 0, INT_LIMIT),
                     check_origin(origin, f"{name}.origin"), deleted, sha256)
