"""Replication messages: the wire format (version 1), encoded and decoded.

A message is a list of frames: frame 0 is the JSON header, frames 1…n the
contents of the files the header lists (``docs/replication.md``).  ``decode``
is the edge where a peer's bytes become a typed ``Message``: it checks every
field, every path (by the same rules as client paths), and every size and
sha256, and raises ``InvalidMessage`` saying what is wrong.  ``pack`` and
``unpack`` turn frames into the journal's record body and back.  The field
checks (``header``, ``check_*``) serve the sync conversation's messages too
(``sync_messages``).

Pure: no sockets, no files, no reactor.
"""

import hashlib
import json
import re
import struct
from dataclasses import dataclass

from imagepipe.errors import ClientError, InvalidMessage
from imagepipe.paths import PathRules, quoted

VERSION = 1
TYPES = ("store", "move", "delete", "heartbeat")
MAX_PATHS = 10_000
INT_LIMIT = 1 << 63  # every integer in a header fits a signed 64-bit column

# The fields each type carries besides v, type, origin and hlc; the fields of
# other types are refused, so a store can never smuggle in a delete.
_FIELDS = {
    "store": {"seq", "files"},
    "move": {"seq", "files", "deleted"},
    "delete": {"seq", "deleted"},
    "heartbeat": {"applied"},
}
_PER_TYPE = set().union(*_FIELDS.values())
_ORIGIN = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class FileEntry:
    """One file a message carries: its clean path, bytes, sha256 (hex) and size."""

    path: str
    data: bytes
    sha256: str
    size: int

    @classmethod
    def of(cls, path, data):
        """The entry for ``data`` at ``path``, with its sha256 and size computed."""
        data = bytes(data)
        return cls(path, data, hashlib.sha256(data).hexdigest(), len(data))


@dataclass(frozen=True)
class Message:
    """One replication message: a change made at ``origin``, or a heartbeat.

    ``files`` holds ``FileEntry`` values and ``deleted`` paths, both tuples.
    ``applied`` is a heartbeat's ``(origin, seq)`` pairs in origin order, a
    tuple so that messages stay hashable; a dict or other pairs given here
    are normalised to it.  A heartbeat's ``seq`` is 0.
    """

    type: str
    origin: str
    seq: int
    hlc: int
    files: tuple = ()
    deleted: tuple = ()
    applied: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "deleted", tuple(self.deleted))
        object.__setattr__(self, "applied", tuple(sorted(dict(self.applied).items())))

    @property
    def applied_map(self):
        """``applied`` as a dict origin → highest contiguous seq."""
        return dict(self.applied)

    @property
    def key(self):
        """``(origin, seq)``: what identifies a change across the cluster."""
        return (self.origin, self.seq)


def encode(message):
    """The wire frames of ``message``: the header, then the file contents in order.

    The header is compact JSON with sorted keys, so equal messages give equal bytes.
    """
    head = {"v": VERSION, "type": message.type, "origin": message.origin, "hlc": message.hlc}
    fields = _FIELDS[message.type]
    if "seq" in fields:
        head["seq"] = message.seq
    if "files" in fields:
        head["files"] = [{"path": entry.path, "size": entry.size, "sha256": entry.sha256}
                         for entry in message.files]
    if "deleted" in fields:
        head["deleted"] = list(message.deleted)
    if "applied" in fields:
        head["applied"] = message.applied_map
    return [json_frame(head)] + [entry.data for entry in message.files]


def json_frame(head):
    """``head`` as a header frame: compact UTF-8 JSON with sorted keys."""
    return json.dumps(head, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _refuse_constant(name):
    raise InvalidMessage(f"header: {name} is not allowed in JSON")


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise InvalidMessage(f"header: field {key!r} appears twice")
        result[key] = value
    return result


def header(frames):
    """The JSON object in frame 0 of ``frames``, the rest unchecked (for indexes)."""
    if not isinstance(frames, (list, tuple)) or not frames:
        raise InvalidMessage("frames: expected a non-empty list of frames")
    if not isinstance(frames[0], bytes):
        raise InvalidMessage(f"frame 0: expected bytes, got {type(frames[0]).__name__}")
    try:
        text = frames[0].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("header: not valid UTF-8") from None
    try:
        head = json.loads(text, parse_constant=_refuse_constant,
                          object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:
        # ValueError also covers integers too long to convert.
        raise InvalidMessage(f"header: not JSON ({error})") from None
    if not isinstance(head, dict):
        raise InvalidMessage(f"header: expected a JSON object, got {type(head).__name__}")
    return head


def check_integer(value, name, low, high):
    """``value`` if it is an integer in ``low``..``high - 1``, else ``InvalidMessage``."""
    # bool is an int subclass; true is not a sequence number.
    if type(value) is not int or not low <= value < high:
        raise InvalidMessage(f"{name}: expected an integer in {low}..{high - 1}, "
                             f"got {quoted(value)}")
    return value


def check_origin(value, name):
    """``value`` if it is a node id (32 lowercase hex digits), else ``InvalidMessage``."""
    if not isinstance(value, str) or not _ORIGIN.fullmatch(value):
        raise InvalidMessage(f"{name}: expected 32 lowercase hex digits, got {quoted(value)}")
    return value


def check_path(value, name, rules):
    """``value`` if it is a path ``rules`` accept unchanged, else ``InvalidMessage``."""
    try:
        path = rules.clean(value, name)
    except ClientError as error:
        raise InvalidMessage(str(error)) from None
    if path != value:
        raise InvalidMessage(f"{name}: {quoted(value)} is not in its clean form {quoted(path)}")
    return path


def check_sha256(value, name):
    """``value`` if it is a sha256 (64 lowercase hex digits), else ``InvalidMessage``."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InvalidMessage(f"{name}: expected 64 lowercase hex digits, got {quoted(value)}")
    return value


def check_list(head, name):
    """Field ``name`` of ``head`` if it is a list, else ``InvalidMessage``."""
    value = head[name]
    if not isinstance(value, list):
        raise InvalidMessage(f"{name}: expected a list, got {type(value).__name__}")
    return value


def _files(listed, data, rules):
    if len(listed) != len(data):
        raise InvalidMessage(f"files: {len(listed)} listed but {len(data)} data frames sent")
    entries = []
    seen = {}
    for index, (item, content) in enumerate(zip(listed, data)):
        name = f"files[{index}]"
        if not isinstance(item, dict):
            raise InvalidMessage(f"{name}: expected an object, got {type(item).__name__}")
        for field in ("path", "size", "sha256"):
            if field not in item:
                raise InvalidMessage(f"{name}.{field}: missing")
        path = check_path(item["path"], f"{name}.path", rules)
        if path in seen:
            raise InvalidMessage(f"{name}.path: {quoted(path)} is already files[{seen[path]}]")
        seen[path] = index
        size = check_integer(item["size"], f"{name}.size", 0, INT_LIMIT)
        sha256 = check_sha256(item["sha256"], f"{name}.sha256")
        if not isinstance(content, bytes):
            raise InvalidMessage(f"frame {index + 1}: expected bytes, "
                                 f"got {type(content).__name__}")
        if size != len(content):
            raise InvalidMessage(f"{name}.size is {size} but the data is {len(content)} bytes")
        if hashlib.sha256(content).hexdigest() != sha256:
            raise InvalidMessage(f"{name}.sha256 does not match the data")
        entries.append(FileEntry(path, content, sha256, size))
    return tuple(entries)


def check_applied(head):
    """Field ``applied`` of ``head`` checked into a dict origin → seq, or ``InvalidMessage``."""
    applied = head["applied"]
    if not isinstance(applied, dict):
        raise InvalidMessage(f"applied: expected an object, got {type(applied).__name__}")
    result = {}
    for origin, seq in applied.items():
        check_origin(origin, "applied")
        result[origin] = check_integer(seq, f"applied[{origin!r}]", 0, INT_LIMIT)
    return result


def decode(frames, rules=PathRules()):
    """The ``Message`` in wire ``frames``, checked completely, or ``InvalidMessage``.

    Paths must pass ``rules`` unchanged; unknown header fields are ignored.
    """
    head = header(frames)
    for field in ("v", "type", "origin", "hlc"):
        if field not in head:
            raise InvalidMessage(f"{field}: missing")
    version = check_integer(head["v"], "v", 0, INT_LIMIT)
    if version != VERSION:
        raise InvalidMessage(f"v: unsupported version {version} (this node speaks {VERSION})")
    kind = head["type"]
    if kind not in TYPES:
        raise InvalidMessage(f"type: unknown message type {quoted(kind)}")
    origin = check_origin(head["origin"], "origin")
    hlc = check_integer(head["hlc"], "hlc", 0, INT_LIMIT)
    fields = _FIELDS[kind]
    for field in sorted(_PER_TYPE):
        if field in fields and field not in head:
            raise InvalidMessage(f"{field}: missing from a {kind} message")
        if field not in fields and field in head:
            raise InvalidMessage(f"{field}: not allowed in a {kind} message")
    if kind == "heartbeat":
        if len(frames) > 1:
            raise InvalidMessage(f"heartbeat: carries {len(frames) - 1} data frames, "
                                 f"expected none")
        return Message(kind, origin, 0, hlc, applied=check_applied(head))
    seq = check_integer(head["seq"], "seq", 1, INT_LIMIT)
    listed = check_list(head, "files") if "files" in fields else []
    deleted = check_list(head, "deleted") if "deleted" in fields else []
    if len(listed) + len(deleted) > MAX_PATHS:
        raise InvalidMessage(f"message: {len(listed) + len(deleted)} paths exceed the limit "
                             f"of {MAX_PATHS}")
    files = _files(listed, frames[1:], rules) if "files" in fields else ()
    if "files" not in fields and len(frames) > 1:
        raise InvalidMessage(f"{kind}: carries {len(frames) - 1} data frames, expected none")
    deleted = tuple(check_path(path, f"deleted[{index}]", rules)
                    for index, path in enumerate(deleted))
    if kind in ("store", "move") and not files:
        raise InvalidMessage(f"files: a {kind} needs at least one file")
    if kind in ("delete", "move") and not deleted:
        raise InvalidMessage(f"deleted: a {kind} needs at least one path")
    if kind == "move" and len(files) != len(deleted):
        raise InvalidMessage(f"move: {len(files)} destinations but {len(deleted)} sources")
    return Message(kind, origin, seq, hlc, files=files, deleted=deleted)


def pack(frames):
    """The journal record body of ``frames``: ``u32 count | (u32 length | frame)…``."""
    if not frames:
        raise ValueError("a message has at least one frame")
    parts = [_U32.pack(len(frames))]
    for frame in frames:
        parts.append(_U32.pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def unpack(body):
    """The frames packed in ``body``, or ``InvalidMessage`` when it is inconsistent."""
    view = memoryview(body)
    end = len(view)
    if end < _U32.size:
        raise InvalidMessage(f"body: {end} bytes cannot hold a frame count")
    (count,) = _U32.unpack_from(view, 0)
    if count == 0:
        raise InvalidMessage("body: holds no frames")
    if count > (end - _U32.size) // _U32.size:
        raise InvalidMessage(f"body: {count} frames cannot fit in {end} bytes")
    frames = []
    offset = _U32.size
    for index in range(count):
        if end - offset < _U32.size:
            raise InvalidMessage(f"body: frame {index} has no length")
        (length,) = _U32.unpack_from(view, offset)
        offset += _U32.size
        if end - offset < length:
            raise InvalidMessage(f"body: frame {index} of {length} bytes runs past the end")
        frames.append(bytes(view[offset:offset + length]))
        offset += length
    if offset != end:
        raise InvalidMessage(f"body: {end - offset} bytes after the last frame")
    return frames

