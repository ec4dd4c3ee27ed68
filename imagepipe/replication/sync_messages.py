"""The sync conversation's messages: requests, answers, path states.

A downstream node's DEALER sends one-frame JSON requests (``SyncRequest``)
to an upstream's ROUTER; the upstream answers with changes (the wire format
of ``messages``), ``file`` answers carrying one ``PathState`` each, and the
other answers (``SyncAnswer``): ``docs/replication.md`` lists them all.
The decoders are the edge where a peer's request or answer becomes a typed
value: every field is checked (types, ranges, sizes, paths by the same rules
as client paths) and anything malformed raises ``InvalidMessage``.

Pure: no sockets, no files, no reactor.
"""

import hashlib
from dataclasses import dataclass

from imagepipe.errors import InvalidMessage
from imagepipe.paths import PathRules, quoted
from imagepipe.replication.messages import (
    INT_LIMIT, check_applied, check_integer, check_list, check_origin, check_path, check_sha256,
    header, json_frame)

MAX_FETCH_PATHS = 100
MAX_MANIFEST_ROWS = 2000

# The fields each type carries besides ``type`` (and a request's ``node``); as
# with messages, the fields of other types are refused.
_REQUEST_FIELDS = {"catchup": {"applied", "limit"}, "ack": {"applied"}, "manifest": set(),
                   "fetch": {"paths"}}
_ANSWER_FIELDS = {"caught-up": {"more"}, "full-sync-needed": set(), "manifest-part": {"rows"},
                  "manifest-end": {"applied"}, "fetch-end": set()}


@dataclass(frozen=True)
class SyncRequest:
    """A request from downstream ``node`` to an upstream's sync endpoint.

    ``applied`` (catchup, ack) is ``(origin, seq)`` pairs in origin order, as
    in ``Message``; ``limit`` (catchup) the most journal messages wanted in
    one answer; ``paths`` (fetch) the paths whose current state is wanted.
    """

    type: str
    node: str
    applied: tuple = ()
    limit: int = 0
    paths: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "applied", tuple(sorted(dict(self.applied).items())))
        object.__setattr__(self, "paths", tuple(self.paths))

    @property
    def applied_map(self):
        """``applied`` as a dict origin → highest contiguous seq."""
        return dict(self.applied)


@dataclass(frozen=True)
class SyncAnswer:
    """An upstream's answer that is neither a change nor a ``file``.

    ``more`` (caught-up) says whether the catch-up has more to send;
    ``states`` (manifest-part) holds ``PathState`` values without data;
    ``applied`` (manifest-end) is the sequences the manifest reflects, as
    ``(origin, seq)`` pairs.
    """

    type: str
    more: bool = False
    states: tuple = ()
    applied: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "applied", tuple(sorted(dict(self.applied).items())))

    @property
    def applied_map(self):
        """``applied`` as a dict origin → highest contiguous seq."""
        return dict(self.applied)


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


def encode_request(request):
    """The one frame of ``request``."""
    head = {"type": request.type, "node": request.node}
    values = {"applied": request.applied_map, "limit": request.limit,
              "paths": list(request.paths)}
    head.update((name, values[name]) for name in _REQUEST_FIELDS[request.type])
    return [json_frame(head)]


def encode_answer(answer):
    """The one frame of ``answer``."""
    head = {"type": answer.type}
    fields = _ANSWER_FIELDS[answer.type]
    if "more" in fields:
        head["more"] = answer.more
    if "rows" in fields:
        head["rows"] = [state.row() for state in answer.states]
    if "applied" in fields:
        head["applied"] = answer.applied_map
    return [json_frame(head)]


def encode_state(state):
    """Frames of a full-sync ``file`` answer: JSON header, then the bytes."""
    head = {"type": "file", "path": state.path, "hlc": state.hlc, "origin": state.origin,
            "deleted": state.deleted, "sha256": state.sha256}
    return [json_frame(head), state.data]


def _one_frame(frames, table, what):
    """The type and header of a one-frame request or answer, its fields as its type needs."""
    head = header(frames)
    if len(frames) != 1:
        raise InvalidMessage(f"{what}: carries {len(frames) - 1} frames after its header, "
                             f"expected none")
    kind = head.get("type")
    if kind not in table:
        raise InvalidMessage(f"type: unknown {what} type {quoted(kind)}")
    for field in sorted(set().union(*table.values())):
        if field in table[kind] and field not in head:
            raise InvalidMessage(f"{field}: missing from {what} {quoted(kind)}")
        if field not in table[kind] and field in head:
            raise InvalidMessage(f"{field}: not allowed in {what} {quoted(kind)}")
    return kind, head


def decode_request(frames, rules=PathRules()):
    """The ``SyncRequest`` in ``frames``, checked completely, or ``InvalidMessage``.

    Fetched paths must pass ``rules`` unchanged; unknown fields are ignored.
    """
    kind, head = _one_frame(frames, _REQUEST_FIELDS, "request")
    if "node" not in head:
        raise InvalidMessage(f"node: missing from request {quoted(kind)}")
    node = check_origin(head["node"], "node")
    applied = check_applied(head) if "applied" in head else {}
    limit = check_integer(head["limit"], "limit", 1, INT_LIMIT) if "limit" in head else 0
    paths = check_list(head, "paths") if "paths" in head else []
    if len(paths) > MAX_FETCH_PATHS:
        raise InvalidMessage(f"paths: {len(paths)} paths exceed the limit of {MAX_FETCH_PATHS}")
    paths = [check_path(path, f"paths[{index}]", rules) for index, path in enumerate(paths)]
    return SyncRequest(kind, node, applied, limit, paths)


def decode_answer(frames, rules=PathRules()):
    """The ``SyncAnswer`` in ``frames``, checked completely, or ``InvalidMessage``.

    Manifest paths must pass ``rules`` unchanged; unknown fields are ignored.
    A manifest part checks up to 2,000 paths: decode it off the reactor.
    """
    kind, head = _one_frame(frames, _ANSWER_FIELDS, "answer")
    more = head.get("more", False)
    if type(more) is not bool:
        raise InvalidMessage(f"more: expected true or false, got {quoted(more)}")
    rows = check_list(head, "rows") if "rows" in head else []
    if len(rows) > MAX_MANIFEST_ROWS:
        raise InvalidMessage(f"rows: {len(rows)} rows exceed the limit of {MAX_MANIFEST_ROWS}")
    states = [state_from_row(row, rules, f"rows[{index}]") for index, row in enumerate(rows)]
    applied = check_applied(head) if "applied" in head else {}
    return SyncAnswer(kind, more, states, applied)


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
