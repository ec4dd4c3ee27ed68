"""Replication links on a memory reactor: the clock, thread pools and sockets they are
given in the unit tests, and a node made of them.

Nothing here opens a ZeroMQ socket or starts a thread.  A pool runs each job at
once in the test's thread, and its result comes back to the reactor as a
thread's would: on the next ``reactor.advance``.
"""

import json

from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from imagepipe.config import ReplicationSettings
from imagepipe.paths import PathRules
from imagepipe.replication import messages
from imagepipe.replication.hlc import HybridClock
from imagepipe.replication.journal import Journal
from imagepipe.replication.links import ReplicationLinks
from imagepipe.replication.messages import FileEntry, Message
from imagepipe.replication.replica import Replica
from imagepipe.replication.state import ReplicaState
from imagepipe.tree import Tree

UPSTREAM = "tcp://10.0.0.2:8086"
OTHER = "aa" * 16  # the upstream's origin


class Reactor(MemoryReactorClock):
    """A memory reactor whose calls from threads run when the clock next advances."""

    def callFromThread(self, function, *args, **kwargs):
        self.callLater(0, function, *args, **kwargs)


class Pool:
    """Stands in for a one-thread ``ThreadPool``: runs each job at once, names it in ``ran``."""

    def __init__(self):
        self.started = False
        self.ran = []

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def callInThread(self, function, *args, **kwargs):
        self.callInThreadWithCallback(None, function, *args, **kwargs)

    def callInThreadWithCallback(self, on_result, function, *args, **kwargs):
        self.ran.append(getattr(function, "__name__", repr(function)))
        try:
            result = function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - handed back as the ThreadPool does
            if on_result is None:
                raise
            on_result(False, Failure())
            return
        if on_result is not None:
            on_result(True, result)


class Socket:
    """A socket that keeps what is sent on it; ``deliver`` is a message arriving."""

    def __init__(self, received=None):
        self.received = received
        self.sent = []

    def send(self, frames):
        self.sent.append(list(frames))

    def deliver(self, frames):
        self.received(frames)


class Sockets:
    """Stands in for ``ZmqSockets``: hands out ``Socket`` values and remembers them."""

    def __init__(self):
        self.state = "new"
        self.pub = self.server = None  # the PUB and the ROUTER
        self.subscribers = []
        self.dealers = []

    def open(self):
        self.state = "open"

    def publisher(self):
        self.pub = Socket()
        return self.pub

    def router(self, received):
        self.server = Socket(received)
        return self.server

    def subscriber(self, index, received):
        self.subscribers.append(Socket(received))
        return self.subscribers[-1]

    def dealer(self, index, received):
        self.dealers.append(Socket(received))
        return self.dealers[-1]

    def close(self):
        self.state = "closed"


def replica(directory):
    """A real replica (tree, journal, state) under ``directory``."""
    root = directory / "root"
    root.mkdir(parents=True, exist_ok=True)
    state = directory / "state"
    return Replica(Tree(str(root), 0o022), Journal(str(state / "journal")),
                   ReplicaState(str(state)), HybridClock(), PathRules())


def links(directory, subscribe=(UPSTREAM,), retention=7 * 86400.0, heartbeat=1.0):
    """Links over a real replica, with the stand-ins above; not started yet."""
    settings = ReplicationSettings(
        publish=("tcp://0.0.0.0:8086",), subscribe=tuple(subscribe), sync=("tcp://0.0.0.0:8087",),
        state_path=str(directory / "state"), retention=retention, high_water_mark=1000,
        max_message_bytes=1 << 20, curve_secret_key="", curve_public_keys="",
        curve_subscribe_keys=(), heartbeat=heartbeat)
    return ReplicationLinks(Reactor(), replica(directory), settings, Sockets(), Pool(), Pool())


def sent(socket, kind):
    """The JSON headers of the messages of type ``kind`` that ``socket`` sent."""
    heads = [json.loads(frames[0]) for frames in socket.sent]
    return [head for head in heads if head.get("type") == kind]


def store(seq, path, data=b"data", origin=OTHER):
    """The wire frames of a store from ``origin``."""
    return messages.encode(Message("store", origin, seq, seq << 16,
                                   files=(FileEntry.of(path, data),)))


def heartbeat(applied, origin=OTHER):
    """The wire frames of ``origin``'s heartbeat announcing ``applied``."""
    return messages.encode(Message("heartbeat", origin, 0, 1 << 16, applied=applied))


def answer(head, *data):
    """A one-frame answer (or a header and data frames) from the upstream."""
    return [json.dumps(head).encode("utf-8"), *data]
