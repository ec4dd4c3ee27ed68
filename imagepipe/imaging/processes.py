"""Rendering in child processes, so that Python's interpreter lock does not cap the cores.

With ``[images] render_processes = N``, on-the-fly renders run in N child
processes (``python -m imagepipe.imaging.processes CONFIG FD``) instead of
the worker threads.  A worker thread hands its job to an idle child over a
socket pair and waits for the answer with the lock released; the child
reads a tree source itself (only its path crosses the socket, not its
bytes), renders with its own engine, and sends the encoded result back.
Each child loads the same config, starts ImageMagick behind the same
policy, and takes the limits in force with every job (so a reload reaches
it).

A child that dies (a crash in a decoder, a kill) fails the job it had with
``OperationFailed`` and is replaced; the node keeps serving.  Children exit
when their socket closes, so none outlives the node.

Messages are a 4-byte length and a pickle, between this process and the
children it started: nothing else can write to the sockets.
"""

import pickle
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading

from imagepipe import errors
from imagepipe.errors import ImagepipeError, OperationFailed

_LENGTH = struct.Struct("!I")


def _send(sock, message):
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _receive(sock):
    (length,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    return pickle.loads(_exactly(sock, length))


def _exactly(sock, count):
    buffer = bytearray(count)
    view = memoryview(buffer)
    while view:
        received = sock.recv_into(view)
        if not received:
            raise EOFError("the other side closed the socket")
        view = view[received:]
    return bytes(buffer)


class _Child:
    """One render process and this side of its socket."""

    def __init__(self, config_file):
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imagepipe.imaging.processes", config_file,
             str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self.socket = ours

    def stop(self, kill=False):
        self.socket.close()  # the child exits on end of file
        if kill:
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class RenderProcesses:
    """``count`` children; ``call`` runs one job in an idle one (blocking: a worker thread)."""

    def __init__(self, count, config_file):
        self.config_file = config_file
        self.count = count
        self.closed = False
        self._idle = queue.Queue()
        self._all = []
        self._lock = threading.Lock()
        for _ in range(count):
            self._idle.put(self._start())

    def _start(self):
        child = _Child(self.config_file)
        with self._lock:
            self._all.append(child)
        return child

    def call(self, method, *args):
        """``method(*args)`` in a child; its result, or the error it raised, raised here.

        A child found dead before it got the job is replaced and the job
        given to another; one that dies during the job fails it.
        """
        message = (method, args)
        for _ in range(self.count + 1):
            child = self._idle.get()
            try:
                _send(child.socket, message)
            except OSError:
                self._replace(child)
                continue
            try:
                kind, value = _receive(child.socket)
            except (OSError, EOFError, pickle.UnpicklingError):
                raise OperationFailed(f"render process died during {method} "
                                      f"({self._replace(child)}); it was replaced") from None
            break
        else:
            raise OperationFailed("render processes keep dying at start (see the log)")
        self._idle.put(child)
        if kind == "error":
            raise _error(*value)
        return value

    def _replace(self, child):
        """Stop ``child`` and start another; how it ended, in words."""
        with self._lock:
            self._all.remove(child)
        child.stop(kill=True)
        code = child.process.returncode
        if not self.closed:
            self._idle.put(self._start())
        return (f"signal {signal.Signals(-code).name}" if code is not None and code < 0
                else f"exit status {code}")

    def close(self):
        """Stop every child (they finish the job they have first)."""
        self.closed = True
        with self._lock:
            children, self._all = self._all, []
        for child in children:
            child.stop()


def _error(name, message):
    """The ``ImagepipeError`` a child reported, as the same class here."""
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, ImagepipeError)):
        kind = OperationFailed
    return kind(message)


# The child ------------------------------------------------------------------------

class _Worker:
    """What a child does with each job."""

    def __init__(self, config_file):
        from imagepipe import config as configuration
        from imagepipe.imaging import magick

        config = configuration.load(config_file)
        status = magick.start(config.imagemagick)  # before anything imports Wand
        from imagepipe.store import Tree
        from imagepipe.tap import make_engine
        from imagepipe.web.sources import TreeSource

        self.engine = make_engine(config, status)
        self.tree = TreeSource(Tree(config.images.path, config.images.umask))

    def transform_path(self, limits, path, transform, defaults, accept):
        """Render a file of the tree; (Rendered, its version, its modification time)."""
        fetched = self.tree.read(path)
        return self.transform(limits, fetched.data, transform, defaults, accept), \
            fetched.version, fetched.modified

    def transform(self, limits, data, transform, defaults, accept):
        """Render ``data``; the ``Rendered``."""
        self.engine.limits = limits
        return self.engine.transform(data, transform, defaults, accept)


def serve(config_file, fd):
    """The child's loop: one job at a time until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node decides when children stop
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    worker = _Worker(config_file)
    methods = {"transform": worker.transform, "transform_path": worker.transform_path}
    while True:
        try:
            method, args = _receive(sock)
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", methods[method](*args))
        except ImagepipeError as error:
            reply = ("error", (type(error).__name__, str(error)))
        except Exception as error:  # noqa: BLE001 - reported, and the child goes on
            sys.stderr.write(f"imagepipe render process: {method} failed: {error!r}\n")
            reply = ("error", ("OperationFailed", "render failed (logged)"))
        _send(sock, reply)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
