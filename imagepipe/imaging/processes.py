"""Rendering in child processes, so that Python's interpreter lock does not cap the cores.

With ``[images] render_processes = N``, on-the-fly renders run in N child
processes (``python -m imagepipe.imaging.processes FD``) instead of the
worker threads.  A worker thread hands its job to an idle child over a
socket pair and waits for the answer with the lock released; the child
reads a tree source itself (only its path crosses the socket, not its
bytes), renders with its own engine, and sends the encoded result back.

* The children start with the node's services (after twistd has
  daemonized and dropped privileges) and are told the node's own settings
  (engine, tree, ImageMagick): they never read the config file, so an edit
  on disk cannot make them differ from the node.  The image limits and
  ImageMagick's resource limits in force travel with every job, so a
  reload reaches them.
* A child found dead before it gets a job is replaced and the job given to
  another; one that dies during a job fails it (``OperationFailed``, 500)
  and is replaced; one that runs past the time limit (plus a grace) is
  killed and the job fails with ``TooLarge``, so no worker thread waits
  forever.  A child that cannot be started leaves its slot empty, to be
  started again by the next job.
* A child whose resident memory passed ``[images] render_process_memory``
  after a job (a huge image leaves the heap large) says so in its answer
  and exits; a fresh one takes its slot.
* Children ignore SIGINT, SIGTERM and SIGHUP (the node drains and then
  closes their sockets, which ends them) and are killed by the kernel if the
  node dies.

Jobs go out as a 4-byte length and a pickle (from the node, trusted).
Answers come back in a plain format of bytes and text that the node parses
without unpickling: a child decodes untrusted images, so nothing it sends
may run code in the node.
"""

import ctypes
import dataclasses
import os
import pickle
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from zope.interface import implementer

from imagepipe import errors
from imagepipe.errors import ImagepipeError, OperationFailed, TooLarge
from imagepipe.imaging.interfaces import ITransformer

_LENGTH = struct.Struct("!I")
_REPLY = struct.Struct("!BIII")  # flags, width, height, length of the text
_OK, _RETIRING = 1, 2  # flags: a result (else an error); the child exits after this answer
_GRACE = 5.0  # seconds past the time limit before a child is killed
_PR_SET_PDEATHSIG = 1


def _send(sock, body):
    sock.sendall(_LENGTH.pack(len(body)))
    sock.sendall(body)


def _receive(sock):
    (length,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    return _exactly(sock, length)


def _exactly(sock, count):
    buffer = bytearray(count)
    view = memoryview(buffer)
    while view:
        received = sock.recv_into(view)
        if not received:
            raise EOFError("the other side closed the socket")
        view = view[received:]
    return buffer


def _reply_ok(rendered, version, modified):
    """An answer: the encoded image and what the node needs to know of it."""
    spans = ",".join(f"{name}={seconds:.6f}" for name, seconds in rendered.spans.items())
    text = "\n".join((rendered.format.name, version or "", repr(modified), spans)).encode()
    return _REPLY.pack(1, rendered.width, rendered.height, len(text)) + text + rendered.data


def _reply_error(name, message):
    text = f"{name}\n{message}".encode()
    return _REPLY.pack(0, 0, 0, len(text)) + text


def _parse_reply(body):
    """(Rendered, version, modified) from an answer, or the error it names, raised."""
    from imagepipe.imaging import Rendered
    from imagepipe.imaging.formats import by_name

    flags, width, height, length = _REPLY.unpack_from(body)
    text = bytes(body[_REPLY.size:_REPLY.size + length]).decode()
    if not flags & _OK:
        name, _, message = text.partition("\n")
        raise _error(name, message)
    fmt_name, version, modified, spans = text.split("\n")
    data = bytes(body[_REPLY.size + length:])
    modified = None if modified == "None" else float(modified)
    timed = {name: float(seconds) for name, _, seconds in
             (item.partition("=") for item in spans.split(",") if item)}
    return Rendered(data, by_name(fmt_name), width, height, timed), version or None, modified


def _error(name, message):
    """The ``ImagepipeError`` a child reported, as the same class here."""
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, ImagepipeError)):
        kind = OperationFailed
    return kind(message)


class _Child:
    """One render process and this side of its socket."""

    def __init__(self, settings):
        ours, theirs = socket.socketpair()
        try:
            # A session of its own: a Ctrl-C on the node's terminal is the node's to handle.
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "imagepipe.imaging.processes",
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.socket = ours
        _send(ours, pickle.dumps(settings))

    def end(self):
        """Close the socket (an idle child exits on end of file) and kill the process."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting in recv
        except OSError:
            pass
        self.socket.close()
        if self.process.poll() is None:
            self.process.kill()


class RenderProcesses:
    """``count`` child slots; ``call`` runs one job in an idle child (blocking: a worker thread).

    ``settings``: what every child needs to set itself up like the node
    (``child_settings``).
    """

    def __init__(self, count, settings):
        self.count = count
        self.settings = settings
        self.closed = False
        self._idle = queue.Queue()
        self._all = []
        self._lock = threading.Lock()
        self.replaced = 0  # children ended and replaced (died, timed out, retired)

    def state(self):
        """{"alive": children running now, "replaced": since the start} (for /status)."""
        with self._lock:
            alive = sum(1 for child in self._all if child.process.poll() is None)
        return {"alive": alive, "slots": self.count, "replaced": self.replaced}

    def start(self):
        """Start every child (a slot whose child cannot start stays empty)."""
        for _ in range(self.count):
            self._idle.put(self._start_or_none())

    def _start_or_none(self):
        try:
            child = _Child(self.settings)
        except OSError as error:
            sys.stderr.write(f"imagepipe: cannot start a render process: {error}\n")
            return None
        with self._lock:
            self._all.append(child)
        return child

    def call(self, method, limits, *args):
        """``method`` in a child; (Rendered, version, modified), or its error raised here.

        ``limits``: the ``ImageLimits`` in force; ImageMagick's come from
        ``magick.applied``.
        """
        from imagepipe.imaging import magick

        if self.closed:
            raise OperationFailed("render processes are stopping")
        message = pickle.dumps((method, limits, magick.applied, args))
        for _ in range(self.count + 1):
            child = self._idle.get()
            if child is None:
                child = self._start_or_none()
                if child is None:
                    self._idle.put(None)
                    raise OperationFailed("cannot start a render process (see the log)")
            try:
                if child.process.poll() is not None:
                    raise BrokenPipeError
                _send(child.socket, message)
            except OSError:
                self._replace(child)  # it was dead before it got the job
                continue
            return self._answer(child, method, limits)
        raise OperationFailed("render processes keep dying at start (see the log)")

    def _answer(self, child, method, limits):
        """Wait for ``child``'s answer within the time limit; the child goes back or is replaced."""
        child.socket.settimeout(limits.time_limit + _GRACE)
        try:
            body = _receive(child.socket)
        except socket.timeout:
            self._replace(child)
            raise TooLarge(f"image: MAGICK_TIME_LIMIT ({limits.time_limit:g} s) reached; "
                           f"the render process was stopped") from None
        except (OSError, EOFError) as failure:
            ended = self._replace(child)
            if self.closed:
                raise OperationFailed("render processes are stopping") from failure
            raise OperationFailed(f"render process died during {method} ({ended}); it was "
                                  f"replaced") from None
        except BaseException:
            self._replace(child)
            raise
        if body[0] & _RETIRING:
            self._replace(child)
        else:
            self._idle.put(child)
        return _parse_reply(body)

    def _replace(self, child):
        """End ``child``, free its slot for a new one; how it ended, in words."""
        with self._lock:
            if child in self._all:
                self._all.remove(child)
            self.replaced += 1
        child.end()
        try:
            code = child.process.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        if not self.closed:
            self._idle.put(self._start_or_none())
        if code is None:
            return "still running"
        return (f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}")

    def close(self, timeout=10.0):
        """Stop every child: end of file for the idle ones, a kill for any still busy."""
        self.closed = True
        with self._lock:
            children, self._all = self._all, []
        for child in children:
            try:
                child.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            child.end()
            child.process.wait()


@implementer(ITransformer)
class ProcessEngine:
    """The node's engine with its transforms made in render processes.

    Offers what an engine offers the on-the-fly renderer and ``/health``
    (``name``, ``formats``, ``limits``, ``transform``, ``transform_source``),
    so they render the same way in threads or in children.  ``limits`` are
    the node engine's, which a reload changes; they travel with each job.
    """

    def __init__(self, engine, processes):
        self.engine = engine
        self.processes = processes  # RenderProcesses

    @property
    def name(self):
        return self.engine.name

    @property
    def formats(self):
        return self.engine.formats

    @property
    def limits(self):
        return self.engine.limits

    def transform(self, data, transform, defaults, accept=()):
        """``Engine.transform`` in a child: the source's bytes cross the socket."""
        rendered, _, _ = self.processes.call("transform", self.limits, data, transform,
                                             defaults, accept)
        return rendered

    def transform_source(self, storage, path, transform, defaults, accept=()):
        """``Engine.transform_source`` in a child, which reads a local file itself; the
        bytes of any other storage (a bucket) are read here and cross the socket."""
        if storage.local_root is None:
            data, version, modified = storage.source(path)
            return self.transform(data, transform, defaults, accept), version, modified
        return self.processes.call("transform_path", self.limits, path, transform, defaults,
                                   accept)


# The child ------------------------------------------------------------------------

class _Worker:
    """What a child does with each job."""

    def __init__(self, settings):
        from imagepipe.imaging import magick

        status = magick.start(settings["imagemagick"])  # before anything imports Wand
        from imagepipe.imaging import engines
        from imagepipe.tree import Tree

        self.magick = magick
        self.retire_bytes = settings["retire_bytes"]
        self.engine = engines.make(settings["engine"], settings["limits"], status)
        self.tree = Tree(settings["path"], 0o022)  # read only: the umask is never used

    def run(self, method, limits, magick_settings, args):
        """One job; the answer's bytes."""
        if magick_settings is not None and magick_settings != self.magick.applied:
            self.magick.apply_limits(magick_settings)
        self.engine.limits = limits
        started = time.monotonic()
        if method == "transform_path":
            path, transform, defaults, accept = args
            data, version, modified = self.tree.source(path)
        elif method == "transform":
            data, transform, defaults, accept = args
            version = modified = None
        else:
            raise OperationFailed(f"render process: unknown job {method!r}")
        read = time.monotonic() - started
        rendered = self.engine.transform(data, transform, defaults, accept)
        if method == "transform_path":
            rendered = dataclasses.replace(rendered, spans={**rendered.spans, "fetch": read})
        return _reply_ok(rendered, version, modified)


def _resident_bytes():
    """This process's resident memory (0 when /proc cannot tell)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")


def serve(fd):
    """The child's loop: one job at a time until the socket closes."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)  # the node decides when children stop
    try:  # die with the node, even if it is killed
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    sock = socket.socket(fileno=fd)
    worker = _Worker(pickle.loads(_receive(sock)))
    while True:
        try:
            job = pickle.loads(_receive(sock))
        except (EOFError, OSError):
            return
        try:
            reply = worker.run(*job)
        except ImagepipeError as error:
            reply = _reply_error(type(error).__name__, str(error))
        except Exception as error:  # noqa: BLE001 - reported, and the child goes on
            sys.stderr.write(f"imagepipe render process: {job[0]} failed: {error!r}\n")
            reply = _reply_error("OperationFailed", "render failed (logged)")
        retiring = _resident_bytes() > worker.retire_bytes
        if retiring:
            reply = bytes([reply[0] | _RETIRING]) + reply[1:]
        try:
            _send(sock, reply)
        except OSError:
            return
        if retiring:
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]))  # serve() ignores the stop signals first of all
