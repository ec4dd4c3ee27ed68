"""Replication between three real nodes: lag, catch-up, and throughput with peers.

Three ``twistd -n imagepipe`` processes (A, B, C) run on loopback as a full
mesh: each one's ``[replication] subscribe`` lists the other two (and
``forward = false``, as a mesh should be configured).  Each has
``io_threads = 2``, its state under a temporary directory, and runs with
MALLOC_ARENA_MAX=2.  The task throughout is one store_image of a corpus
photo, downscaled once with Pillow (JPEG quality 90), to a 1024x1024 fit, a
250x250 fit ("_m") and a 50x50 centre crop ("_s"), JPEG quality 85.  One run
measures

(1) replication lag: store_image on A at a steady rate (20 calls/s for 30 s
    by default, 1600 px source); per call, the time from A's XML-RPC answer
    until all three variant files are in place, at A's size, on B and on C.
    Arrivals are seen with inotify (IN_MOVED_TO | IN_CLOSE_WRITE, through
    ctypes) by one watcher thread per peer, or by polling every 2 ms where
    inotify is missing.  A ZeroMQ SUB of this script on A's publish endpoint
    splits the lag into "answer -> published" and "published -> files in
    place on the peer";
(2) catch-up: B is killed (SIGKILL), A takes 1,000 store_image calls (600 px
    source), then B starts again; the time from B's process start until B
    holds every file A holds (names and sizes, hidden directories excluded);
(3) throughput: store_image calls/s from 2 client threads on A, with its
    two peers subscribed, and on a fourth node with no [replication]
    section at all, 20 s each (in blocks of 10 s: A, alone, alone, A, so
    that drift in the machine's speed weighs on both); and their ratio.
    The peers run on the same CPUs as A, so the ratio includes their work.

and prints markdown tables, ending with the targets and PASS/MISS.

Run it with the project's virtualenv (twistd is taken from beside the
interpreter):

    python bench/replication.py [--rate 20] [--lag-seconds 30]
        [--catchup-calls 1000] [--throughput-seconds 20] [--image PATH] [--keep]
"""

import argparse
import ctypes
import ctypes.util
import errno
import http.client
import io
import json
import math
import os
import platform
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
import zmq
from PIL import Image

import corpus
from common import TWISTD, Target, convert_version, free_pair, free_port, table, wait_listening

DEFAULT_PHOTO = "sunset_by_Aitzol_Berasategi.jpg"

QUALITY = 85  # of the stored variants
SOURCE_QUALITY = 90  # of the downscaled source sent to the server
SIZES = {"": [1024, 1024], "_m": [250, 250], "_s": [50, 50]}
CROPS = {"": 0, "_m": 0, "_s": 1}
LAG_EDGE = 1600  # longest side of the source in (1) and (3)
CATCHUP_EDGE = 600  # longest side of the source in (2)
IO_THREADS = 2
SENDERS = 4  # client threads sharing the paced calls of (1)
WARMUP_CALLS = 3
POLL_INTERVAL = 0.002  # seconds between polls when inotify is missing
WAIT_TIMEOUT = 120.0  # seconds to wait for any one event before giving up
OTHER_CPU_TOLERATED = 0.1  # cores used by other processes before (3) is in doubt

LAG_TARGET_MS = 50
CATCHUP_TARGET_S = 15
RATIO_TARGET = 0.9

# Children get this environment: no MAGICK_* from the caller, the allocator
# setting the brief asks for, and unbuffered logs.
NODE_ENV = dict({name: value for name, value in os.environ.items()
                 if not name.startswith("MAGICK_")},
                MALLOC_ARENA_MAX="2", PYTHONUNBUFFERED="1")

# inotify(7)
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
WATCH_MASK = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_ONLYDIR
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


# Results ------------------------------------------------------------------

@dataclass
class LagResult:
    """What (1) measured: per-peer lags and the stages behind them, in seconds."""

    calls: int
    seconds: float  # from the first send to the last
    late_sends: int  # calls sent more than 10 ms after their slot
    latency: list  # A's answer times as the client saw them
    lags: dict  # peer name -> [lag per call]; inf when the files never came
    published: list  # answer -> the probe heard the message
    applied: dict  # peer name -> [probe heard -> files in place]
    cores: tuple  # CPU seconds per wall second: (A, B + C, this script, other)

    @property
    def rate(self):
        """The call rate achieved."""
        return (self.calls - 1) / self.seconds if self.seconds else math.inf


@dataclass
class CatchupResult:
    """What (2) measured."""

    calls: int
    clients: int
    calls_seconds: float
    files: int
    bytes: int
    other_drained: float  # seconds after the last call until C held everything
    listening: float  # B's process start -> its port accepts
    caught_up: float  # B's process start -> B holds every file of A; inf when never
    missing: int
    extra: list


@dataclass
class LoadResult:
    """One throughput run of (3)."""

    label: str
    calls: int
    seconds: float
    cores: tuple  # CPU seconds per wall second: (node, its peers, this script, other)

    @property
    def rate(self):
        """Calls per second."""
        return self.calls / self.seconds

    def row(self):
        """The run as table cells."""
        node, peers, client, other = self.cores
        per_call = [1000 * cores * self.seconds / self.calls for cores in (node, peers)]
        return [self.label, str(self.calls), f"{self.seconds:.1f}", f"{self.rate:.2f}",
                f"{node:.2f}", f"{per_call[0]:.0f}", f"{peers:.2f}", f"{per_call[1]:.0f}",
                f"{client:.2f}", f"{other:.2f}"]


# Small helpers ----------------------------------------------------------------

def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0,
                        help="store_image calls per second on A in (1) (default 20)")
    parser.add_argument("--lag-seconds", type=float, default=30.0,
                        help="duration of (1) in seconds (default 30)")
    parser.add_argument("--catchup-calls", type=int, default=1000,
                        help="calls made on A while B is down in (2) (default 1000)")
    parser.add_argument("--throughput-seconds", type=float, default=20.0,
                        help="seconds of calls on each node in (3), in two blocks "
                             "(default 20)")
    parser.add_argument("--clients", type=int, default=2,
                        help="client threads in (2) and (3) (default 2)")
    parser.add_argument("--image", type=Path,
                        help=f"source photo (default: {DEFAULT_PHOTO}, fetched from Debian "
                             f"when missing)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the nodes' directories and logs, and print where")
    return parser.parse_args()


def percentile(values, q):
    """The nearest-rank ``q``-th percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms_row(name, seconds):
    """Count, p50, p95, p99 and max of ``seconds``, in ms, as table cells."""
    shown = [percentile(seconds, q) for q in (50, 95, 99, 100)]
    return [name, str(len(seconds)),
            *("never" if math.isinf(s) else f"{1000 * s:.1f}" for s in shown)]


def downscaled(image, edge):
    """``image`` resized with Pillow to ``edge`` px on its longest side, as JPEG q90 bytes."""
    with Image.open(image) as source:
        source.draft("RGB", (edge, edge))  # let the JPEG decoder skip what is thrown away
        picture = source.convert("RGB")
    picture.thumbnail((edge, edge), Image.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=SOURCE_QUALITY)
    return out.getvalue(), picture.size


def fsync_times(directory, count=40, size=150_000):
    """Seconds each write + fsync of a new ``size``-byte file in ``directory`` took.

    The baseline for a peer's apply, which fsyncs a journal record, each
    variant file and their directory before the files are in place.
    """
    data = os.urandom(size)
    times = []
    for index in range(count):
        path = directory / f"fsync-probe-{index}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            started = time.perf_counter()
            os.write(fd, data)
            os.fsync(fd)
            times.append(time.perf_counter() - started)
        finally:
            os.close(fd)
            os.unlink(path)
    return times


def variant_paths(path):
    """The stored paths of the three variants of a store at ``path`` (``x.jpg``)."""
    stem, dot, ext = path.rpartition(".")
    return [f"{stem}{suffix}{dot}{ext}" for suffix in SIZES]


def tree_manifest(root):
    """{relative path: size} of every file under ``root``, hidden files and dirs excluded."""
    manifest = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if not name.startswith("."):
                full = os.path.join(directory, name)
                try:
                    manifest[os.path.relpath(full, root)] = os.stat(full).st_size
                except FileNotFoundError:
                    continue
    return manifest


# Nodes ------------------------------------------------------------------------

class Node:
    """One ``twistd -n imagepipe`` child process, with or without replication."""

    def __init__(self, name, directory, publish=None, subscribe=()):
        self.name = name
        self.directory = directory
        self.images = directory / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.publish = publish
        self.subscribe = list(subscribe)
        self.process = None
        self._log = None

    @property
    def publish_endpoint(self):
        """The ZeroMQ endpoint this node publishes on."""
        return f"tcp://127.0.0.1:{self.publish}"

    def write_config(self):
        """Write this node's imagepipe.ini; return its path."""
        lines = ["[network]", "interface = 127.0.0.1", f"port = {self.port}",
                 "[images]", "path = images", f"io_threads = {IO_THREADS}"]
        if self.publish is not None:
            lines += ["[replication]", f"publish = {self.publish_endpoint}",
                      "subscribe = " + ", ".join(f"tcp://127.0.0.1:{p}" for p in self.subscribe),
                      # a full mesh: every node hears every origin directly
                      "forward = false"]
        config = self.directory / "imagepipe.ini"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, wait=True):
        """Start the process; return ``time.monotonic()`` just before it was spawned."""
        config = self.write_config()
        self._log = open(self.directory / "twistd.log", "ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(TWISTD), "-n", "--pidfile=", "imagepipe", "-c", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.directory, env=NODE_ENV)
        if wait:
            self.wait_listening()
        return started

    def wait_listening(self, timeout=60.0):
        """Wait until the XML-RPC port accepts connections; exit if the process dies."""
        wait_listening(self.process, self.port, lambda: self.log()[-3000:], timeout,
                       name=f"node {self.name}")

    def kill(self):
        """SIGKILL the process and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def stop(self):
        """SIGTERM, SIGKILL after 30 s; safe to call more than once."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self):
        """The node's twistd log so far."""
        path = self.directory / "twistd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cpu_seconds(self):
        """User + system CPU seconds used by the process so far."""
        return sum(psutil.Process(self.process.pid).cpu_times()[:2])


def mesh(workdir, names):
    """Nodes named ``names``, each subscribed to every other."""
    ports = [free_pair() for _ in names]
    return [Node(name, workdir / name, publish=port,
                 subscribe=[p for p in ports if p != port])
            for name, port in zip(names, ports)]


def problems(node):
    """Lines of the node's log that report something going wrong."""
    words = ("error", "traceback", "failed", "dropped", "refused", "warn", "could not")
    return [line for line in node.log().splitlines()
            if any(word in line.lower() for word in words)]


# Clients ---------------------------------------------------------------------

class StoreRequest:
    """A store_image XML-RPC body marshalled once, with a slot for the path."""

    SLOT = "@@path@@"

    def __init__(self, data):
        payload = xmlrpc.client.Binary(data)
        body = xmlrpc.client.dumps(
            (payload, self.SLOT, "", SIZES, 0, CROPS, {"quality": QUALITY}),
            "store_image").encode("utf-8")
        self.head, self.tail = body.split(self.SLOT.encode("ascii"))

    def body(self, path):
        """The request body storing at ``path`` (plain ASCII, nothing to escape)."""
        return self.head + path.encode("ascii") + self.tail


class Client:
    """One kept-alive HTTP connection posting ready-made store_image bodies."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def store(self, body):
        """POST ``body``; raise unless the answer is 'OK'."""
        self.connection.request("POST", "/", body, {"Content-Type": "text/xml"})
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
        (result,), _ = xmlrpc.client.loads(answer)  # raises Fault on a fault answer
        if result != "OK":
            raise RuntimeError(f"store_image answered {result!r}")

    def close(self):
        """Close the connection."""
        self.connection.close()


def run_threads(count, work):
    """Run ``work(index)`` in ``count`` threads; re-raise the first failure here."""
    failures = []

    def guarded(index):
        try:
            work(index)
        except Exception as error:  # noqa: BLE001 - reported by the caller's thread
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:  # the cause, rather than a thread it left waiting at a barrier
        failures.sort(key=lambda error: isinstance(error, threading.BrokenBarrierError))
        raise SystemExit(f"replication.py: a store_image call failed: {failures[0]!r}")


# Watching the peers' trees ---------------------------------------------------

class Inotify:
    """inotify(7) through ctypes: a non-blocking descriptor and its watches."""

    def __init__(self):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")

    def add(self, path):
        """Watch the directory ``path``; its watch descriptor, or None if it is gone."""
        wd = self._add(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise OSError(code, f"inotify_add_watch {path} failed")
        return wd

    def read(self):
        """The pending events as (wd, mask, name) tuples; [] when none."""
        try:
            buffer = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        events, offset = [], 0
        while offset < len(buffer):
            wd, mask, _, length = _EVENT.unpack_from(buffer, offset)
            offset += _EVENT.size
            name = buffer[offset:offset + length].rstrip(b"\0").decode(errors="replace")
            offset += length
            events.append((wd, mask, name))
        return events

    def close(self):
        """Close the descriptor (every watch goes with it)."""
        os.close(self.fd)


class TreeWatcher(threading.Thread):
    """Records when each file of a node's tree is in place, and at what size.

    With inotify, every non-hidden directory under ``root`` is watched
    (directories created later included) and each IN_MOVED_TO or
    IN_CLOSE_WRITE of a non-hidden file is stamped with ``time.monotonic()``
    as the event is read.  Without inotify, only the files announced with
    ``expect`` are looked at, every 2 ms.
    """

    def __init__(self, root, use_inotify=True):
        super().__init__(daemon=True, name=f"watch {root}")
        self.root = str(root)
        self.inotify = Inotify() if use_inotify else None
        self.dirs = {}  # wd -> absolute directory path
        self.arrivals = {}  # relative path -> (monotonic time, size)
        self.expected = {}  # relative path -> size
        self.pending = set()  # expected paths not yet in place at their size
        self.overflows = 0
        self.changed = threading.Condition()
        self._stop_r, self._stop_w = os.pipe()
        if self.inotify:
            self._watch_tree(self.root)

    # Recording -----------------------------------------------------------

    def _record(self, relative, size, when):
        with self.changed:
            self.arrivals[relative] = (when, size)
            if relative in self.pending and self.expected[relative] == size:
                self.pending.discard(relative)
                if not self.pending:
                    self.changed.notify_all()

    def _stat(self, directory, name, when):
        full = os.path.join(directory, name)
        try:
            size = os.stat(full).st_size
        except FileNotFoundError:
            return
        self._record(os.path.relpath(full, self.root), size, when)

    def _watch_tree(self, top):
        """Watch ``top`` and the directories below it, then record the files already there."""
        for directory, dirs, files in os.walk(top):
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            wd = self.inotify.add(directory)
            if wd is None:
                continue
            self.dirs[wd] = directory
            when = time.monotonic()
            for name in files:
                if not name.startswith("."):
                    self._stat(directory, name, when)

    # The thread ------------------------------------------------------------

    def run(self):
        """Record arrivals until ``stop``."""
        if self.inotify:
            self._run_inotify()
        else:
            self._run_polling()

    def _run_inotify(self):
        poller = select.poll()
        poller.register(self.inotify.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            when = time.monotonic()
            for wd, mask, name in self.inotify.read():
                self._event(wd, mask, name, when)

    def _event(self, wd, mask, name, when):
        if mask & IN_Q_OVERFLOW:
            self.overflows += 1
            self._watch_tree(self.root)
            return
        if mask & IN_IGNORED:
            self.dirs.pop(wd, None)
            return
        directory = self.dirs.get(wd)
        if directory is None or not name or name.startswith("."):
            return
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO):
                self._watch_tree(os.path.join(directory, name))
        elif mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
            self._stat(directory, name, when)

    def _run_polling(self):
        while not select.select([self._stop_r], [], [], POLL_INTERVAL)[0]:
            with self.changed:
                pending = list(self.pending)
            when = time.monotonic()
            for relative in pending:
                self._stat(self.root, relative, when)

    def stop(self):
        """End the thread and release its descriptors."""
        os.write(self._stop_w, b"x")
        if self.is_alive():
            self.join()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        if self.inotify:
            self.inotify.close()

    # Asking --------------------------------------------------------------

    def expect(self, sizes):
        """Announce files {relative path: size} to wait for (already there counts)."""
        with self.changed:
            for relative, size in sizes.items():
                self.expected[relative] = size
                if self.arrivals.get(relative, (None, None))[1] != size:
                    self.pending.add(relative)

    def wait(self, timeout=WAIT_TIMEOUT):
        """Wait until every expected file is in place; False after ``timeout`` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: not self.pending, timeout)

    def arrival(self, relative):
        """When ``relative`` was seen at its expected size; inf if it was not."""
        when, size = self.arrivals.get(relative, (math.inf, None))
        return when if size == self.expected.get(relative) else math.inf

    def missing(self):
        """How many expected files are not in place at their size."""
        with self.changed:
            return len(self.pending)


def inotify_works():
    """True when inotify can be used here."""
    try:
        Inotify().close()
        return True
    except (OSError, AttributeError):
        return False


class PublishProbe(threading.Thread):
    """A ZeroMQ SUB on a node's publish endpoint: when each stored path went out."""

    def __init__(self, endpoint):
        super().__init__(daemon=True, name="publish probe")
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.heard = threading.Event()  # set by the first message (heartbeats come every 1 s)
        self.seen = {}  # stored path -> monotonic time of the first message carrying it
        self._running = True

    def run(self):
        """Note when each stored path is first heard, until ``stop``."""
        while self._running:
            if not self.socket.poll(100):
                continue
            frames = self.socket.recv_multipart(copy=False)
            when = time.monotonic()
            self.heard.set()
            head = json.loads(frames[0].bytes)
            for entry in head.get("files", ()):
                self.seen.setdefault(entry["path"], when)

    def stop(self):
        """End the thread and close the socket."""
        self._running = False
        if self.is_alive():
            self.join()
        self.socket.close()
        self.context.term()


# The measurements -------------------------------------------------------------

def sizes_on(node, path):
    """{variant path: size} of the three variants of ``path`` as stored on ``node``."""
    return {variant: (node.images / variant).stat().st_size for variant in variant_paths(path)}


def warm_up(origin, watchers, request, prefix):
    """A few sequential calls on ``origin``, waited for on every watcher.

    Loads ImageMagick in the origin and proves every peer link carries writes
    (an event, not a sleep, tells that the subscriptions are up).
    """
    client = Client(origin.port)
    try:
        for index in range(WARMUP_CALLS):
            path = f"{prefix}/{index}.jpg"
            client.store(request.body(path))
            sizes = sizes_on(origin, path)
            for watcher in watchers:
                watcher.expect(sizes)
    finally:
        client.close()
    for watcher in watchers:
        if not watcher.wait():
            raise SystemExit(f"replication.py: warm-up writes never reached {watcher.root}")


def measure_lag(origin, peers, watchers, request, rate, seconds):
    """(1): paced store_image calls on ``origin``; per call, when each peer had the files.

    ``SENDERS`` threads each take every SENDERS-th call and send it at its
    slot (``start + index / rate``), so one slow answer does not hold back
    the next calls; a node slower than ``rate`` sees at most ``SENDERS``
    calls at once rather than an ever-growing queue, and the rate achieved
    is reported.
    """
    probe = PublishProbe(origin.publish_endpoint)
    probe.start()
    try:
        if not probe.heard.wait(30):
            raise SystemExit("replication.py: the probe heard nothing from A")
        count = max(1, round(rate * seconds))
        paths = [f"lag/{index:05d}.jpg" for index in range(count)]
        sent, answered = [0.0] * count, [0.0] * count
        start = time.monotonic() + 0.1
        cpu = cpu_snapshot(origin, peers)

        def sender(offset):
            client = Client(origin.port)
            try:
                for index in range(offset, count, SENDERS):
                    slot = start + index / rate
                    time.sleep(max(0.0, slot - time.monotonic()))  # pacing, not waiting
                    sent[index] = time.monotonic()
                    client.store(request.body(paths[index]))
                    answered[index] = time.monotonic()
                    sizes = sizes_on(origin, paths[index])
                    for watcher in watchers:
                        watcher.expect(sizes)
            finally:
                client.close()

        run_threads(SENDERS, sender)
        cores = cores_since(cpu, origin, peers, time.monotonic() - start)
        for watcher in watchers:
            watcher.wait()
    finally:
        probe.stop()
    lags = {peer.name: [max(watcher.arrival(v) for v in variant_paths(path)) - answered[i]
                        for i, path in enumerate(paths)]
            for peer, watcher in zip(peers, watchers)}
    heard = [probe.seen.get(variant_paths(path)[0], math.inf) for path in paths]
    applied = {peer.name: [max(watcher.arrival(v) for v in variant_paths(path)) - heard[i]
                           for i, path in enumerate(paths)]
               for peer, watcher in zip(peers, watchers)}
    return LagResult(
        calls=count, seconds=sent[-1] - sent[0],
        late_sends=sum(1 for i in range(count) if sent[i] - (start + i / rate) > 0.010),
        latency=[a - s for s, a in zip(sent, answered)], lags=lags,
        published=[h - a for h, a in zip(heard, answered)], applied=applied, cores=cores)


def store_many(node, request, paths, clients):
    """Store at every path of ``paths`` on ``node`` from ``clients`` threads; the seconds taken."""
    started = time.monotonic()

    def client_thread(offset):
        client = Client(node.port)
        try:
            for path in paths[offset::clients]:
                client.store(request.body(path))
        finally:
            client.close()

    run_threads(clients, client_thread)
    return time.monotonic() - started


def measure_catchup(origin, stopped, other, watchers, request, calls, clients):
    """(2): kill ``stopped``, store ``calls`` times on ``origin``, restart it, time its catch-up.

    ``other`` (the third node) is let to finish applying the calls first, so
    that the catch-up is timed on an otherwise quiet cluster.
    """
    stopped.kill()
    paths = [f"catchup/{index:05d}.jpg" for index in range(calls)]
    calls_seconds = store_many(origin, request, paths, clients)
    finished = time.monotonic()
    manifest = tree_manifest(origin.images)
    watchers[other.name].expect(manifest)
    if not watchers[other.name].wait():
        raise SystemExit(f"replication.py: node {other.name} never applied the catch-up calls")
    other_drained = max(watchers[other.name].arrival(p) for p in manifest) - finished

    watcher = watchers[stopped.name]
    watcher.expect(manifest)
    started = stopped.start(wait=False)
    stopped.wait_listening()
    listening = time.monotonic() - started
    complete = watcher.wait()
    caught_up = (max(watcher.arrival(p) for p in manifest) - started) if complete else math.inf
    held = tree_manifest(stopped.images)
    return CatchupResult(
        calls=calls, clients=clients, calls_seconds=calls_seconds, files=len(manifest),
        bytes=sum(manifest.values()), other_drained=other_drained, listening=listening,
        caught_up=caught_up, missing=watcher.missing(), extra=sorted(set(held) - set(manifest)))


def cpu_snapshot(node, peers):
    """CPU seconds so far: the node, its peers, this process, and the whole machine.

    The machine's figure counts every busy state, hypervisor steal included,
    so that what is left after the others shows interference.
    """
    machine = psutil.cpu_times()
    return (node.cpu_seconds(), sum(peer.cpu_seconds() for peer in peers),
            sum(psutil.Process().cpu_times()[:2]),
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            + machine.steal)


def cores_since(before, node, peers, wall):
    """Cores used since ``before`` (a ``cpu_snapshot``): node, peers, this script, other."""
    node_cpu, peers_cpu, client_cpu, machine = (
        after - earlier for after, earlier in zip(cpu_snapshot(node, peers), before))
    other = machine - node_cpu - peers_cpu - client_cpu
    return tuple(cpu / wall for cpu in (node_cpu, peers_cpu, client_cpu, other))


def measure_throughput(node, peers, request, clients, seconds):
    """(3): store_image calls/s on ``node`` from ``clients`` threads for ``seconds``.

    Each thread makes one untimed call, then all start together and call
    until the deadline, each posting one ready-made body (its own path), so
    the client's own CPU use stays small.
    """
    clock = {}

    def begin():  # run by the barrier once every thread is ready, before any goes on
        clock["start"] = time.monotonic()
        clock["deadline"] = clock["start"] + seconds
        clock["cpu"] = cpu_snapshot(node, peers)

    barrier = threading.Barrier(clients, action=begin)
    counts = [0] * clients

    def client_thread(index):
        client = Client(node.port)
        body = request.body(f"throughput/c{index}.jpg")
        try:
            client.store(body)
            barrier.wait()
            while time.monotonic() < clock["deadline"]:
                client.store(body)
                counts[index] += 1
        except Exception:
            barrier.abort()
            raise
        finally:
            client.close()

    run_threads(clients, client_thread)
    wall = time.monotonic() - clock["start"]
    return LoadResult(node.name, sum(counts), wall, cores_since(clock["cpu"], node, peers, wall))


def combined(label, runs):
    """One ``LoadResult`` for several runs of the same node: summed calls and seconds."""
    seconds = sum(run.seconds for run in runs)
    cores = tuple(sum(run.cores[i] * run.seconds for run in runs) / seconds for i in range(4))
    return LoadResult(label, sum(run.calls for run in runs), seconds, cores)


def compare_throughput(node, peers, alone, request, clients, seconds):
    """(3): calls/s of ``node`` (with ``peers`` subscribed) and of ``alone``, ``seconds`` each.

    Each gets two blocks of half the time, in the order node, alone, alone,
    node, so that a machine slowly getting faster or slower (a VM's
    neighbours) weighs on both alike.  Only one of them is busy at a time;
    the other idles.
    """
    half = seconds / 2
    first = measure_throughput(node, peers, request, clients, half)
    solo = [measure_throughput(alone, [], request, clients, half) for _ in range(2)]
    last = measure_throughput(node, peers, request, clients, half)
    return (combined(f"{node.name} with peers {' and '.join(p.name for p in peers)} subscribed",
                     [first, last]),
            combined("the same node alone (no [replication])", solo))


def peers_drain(origin, watchers, request):
    """Seconds from now until a marker store on ``origin`` is in place on every peer."""
    began = time.monotonic()
    client = Client(origin.port)
    try:
        client.store(request.body("throughput/marker.jpg"))
    finally:
        client.close()
    sizes = sizes_on(origin, "throughput/marker.jpg")
    for watcher in watchers:
        watcher.expect(sizes)
    if not all(watcher.wait() for watcher in watchers):
        return math.inf
    return max(watcher.arrival(p) for watcher in watchers for p in sizes) - began


# Printing -----------------------------------------------------------------------

def print_header(image, lag_size, lag_data, small_size, small_data, inotify, fsyncs):
    """The machine, the ImageMagick version, the task, the disk and how arrivals are seen."""
    with Image.open(image) as source:
        width, height = source.size
    print("# imagepipe replication benchmark\n")
    print(f"machine: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Python {platform.python_version()}")
    print(f"ImageMagick: {convert_version()}")
    print(f"nodes: 3 x twistd imagepipe, full mesh on 127.0.0.1, io_threads={IO_THREADS}, "
          f"MALLOC_ARENA_MAX=2, state under a temporary directory on "
          f"{tempfile.gettempdir()}")
    print(f"source: {image.name} ({width}x{height}) resized with Pillow to "
          f"{lag_size[0]}x{lag_size[1]}, JPEG q{SOURCE_QUALITY}, {len(lag_data)} bytes "
          f"[(1), (3)]; to {small_size[0]}x{small_size[1]}, {len(small_data)} bytes [(2)]")
    print(f"task: size {json.dumps(SIZES)}, crop {json.dumps(CROPS)}, quality {QUALITY}")
    print(f"disk: write + fsync of a new 150 KB file there: p50 {1000 * percentile(fsyncs, 50):.1f}"
          f" ms, max {1000 * max(fsyncs):.1f} ms ({len(fsyncs)} runs)")
    print("arrivals: " + ("inotify (IN_MOVED_TO | IN_CLOSE_WRITE), one watcher thread per peer"
                          if inotify else
                          "inotify UNAVAILABLE: polling the expected files every 2 ms"))
    print(flush=True)


def print_lag(result, rate):
    """The tables of (1)."""
    print(f"## (1) replication lag: {result.calls} calls on A at {rate:g}/s asked, "
          f"{result.rate:.1f}/s achieved ({result.late_sends} sent > 10 ms after their slot)\n")
    rows = [ms_row(f"A -> {name}: answer on A -> 3 files on {name}", lags)
            for name, lags in result.lags.items()]
    rows.append(ms_row("A: send -> answer (client side)", result.latency))
    rows.append(ms_row("A: answer -> message heard by a SUB probe", result.published))
    rows += [ms_row(f"{name}: message heard -> 3 files on {name}", applied)
             for name, applied in result.applied.items()]
    print(table(["measurement", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows))
    if result.rate < 0.95 * rate:
        print(f"\nA could not keep up with {rate:g} calls/s: each of the {SENDERS} client "
              f"threads waited for its previous answer, so A ran saturated throughout.")
    print("\nCPU meanwhile, in cores: A {:.2f}, B + C {:.2f}, this script {:.2f}, "
          "other {:.2f}".format(*result.cores))
    if result.cores[3] > OTHER_CPU_TOLERATED:
        print(f"WARNING: other processes used {result.cores[3]:.2f} CPU during (1).")
    print(flush=True)


def print_catchup(result):
    """The table of (2)."""
    print(f"## (2) catch-up: B killed, {result.calls} calls on A ({CATCHUP_EDGE} px source, "
          f"{result.clients} client threads) in {result.calls_seconds:.1f} s, then B "
          f"restarted\n")
    rows = [
        ["files A holds (hidden dirs excluded)",
         f"{result.files} ({result.bytes / 2**20:.1f} MiB)"],
        ["C held them all, after A's last answer", f"{result.other_drained:.2f} s"],
        ["B: process start -> port accepts", f"{result.listening:.2f} s"],
        ["B: process start -> holds every file of A",
         "not reached" if math.isinf(result.caught_up) else f"{result.caught_up:.2f} s"],
        ["files still missing on B at the end", str(result.missing)],
        ["files on B that A lacks", str(len(result.extra))],
    ]
    print(table(["measurement", "value"], rows))
    print(flush=True)


def print_throughput(runs, drain):
    """The table of (3)."""
    print("## (3) throughput: the same task as (1), one node with and without peers "
          "(two blocks each, in the order with, alone, alone, with)\n")
    print(table(["node", "calls", "seconds", "calls/s", "node cores", "node ms CPU/call",
                 "peers cores", "peers ms CPU/call", "client cores", "other cores"],
                [run.row() for run in runs]))
    print(f"\ncores = CPU seconds per wall second; the peers share this machine's "
          f"{os.cpu_count()} CPUs with A. The peers took {drain:.2f} s after the run to "
          f"hold A's next write.")
    other = max(run.cores[3] for run in runs)
    if other > OTHER_CPU_TOLERATED:
        print(f"WARNING: other processes used up to {other:.2f} CPU during these runs: "
              f"calls/s are understated; rerun on an idle machine.")
    print(flush=True)


def print_problems(nodes):
    """Warnings and errors from the nodes' logs, a few lines each."""
    found = {node.name: problems(node) for node in nodes}
    if not any(found.values()):
        print("node logs: no errors or warnings\n")
        return
    for name, lines in found.items():
        if lines:
            print(f"node {name} log: {len(lines)} warning/error lines, first ones:")
            for line in lines[:5]:
                print(f"    {line[:300]}")
    print()


# Main ---------------------------------------------------------------------------

def raise_on_sigterm():
    """Turn SIGTERM into SystemExit so that the clean-up below runs."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def run(args, workdir, stack):
    """Start the nodes, measure (1) to (3), print the tables; return the targets.

    Every node and watcher started is registered on ``stack``, which stops
    them however this function ends.
    """
    lag_data, lag_size = downscaled(args.image, LAG_EDGE)
    small_data, small_size = downscaled(args.image, CATCHUP_EDGE)
    use_inotify = inotify_works()
    print_header(args.image, lag_size, lag_data, small_size, small_data, use_inotify,
                 fsync_times(workdir))
    lag_request, small_request = StoreRequest(lag_data), StoreRequest(small_data)

    nodes = mesh(workdir, ["A", "B", "C"])
    a, b, c = nodes
    for node in nodes:
        stack.callback(node.stop)
        node.start(wait=False)
    for node in nodes:
        node.wait_listening()
    watchers = {}
    for peer in (b, c):
        watchers[peer.name] = TreeWatcher(peer.images, use_inotify)
        watchers[peer.name].start()
        stack.callback(watchers[peer.name].stop)
    peer_watchers = [watchers["B"], watchers["C"]]

    warm_up(a, peer_watchers, lag_request, "warmup")
    lag = measure_lag(a, [b, c], peer_watchers, lag_request, args.rate, args.lag_seconds)
    print_lag(lag, args.rate)

    catchup = measure_catchup(a, b, c, watchers, small_request, args.catchup_calls,
                              args.clients)
    print_catchup(catchup)

    alone = Node("alone", workdir / "alone")
    stack.callback(alone.stop)
    alone.start()
    with_peers, alone_run = compare_throughput(a, [b, c], alone, lag_request, args.clients,
                                               args.throughput_seconds)
    drain = peers_drain(a, peer_watchers, lag_request)
    print_problems([*nodes, alone])
    for node in [*nodes, alone]:
        node.stop()
    print_throughput([with_peers, alone_run], drain)

    return [
        *(Target(f"(1) lag p99, A -> {name}", 1000 * percentile(lags, 99), LAG_TARGET_MS,
                 at_most=True, unit=" ms", fmt=".1f") for name, lags in lag.lags.items()),
        Target("(2) catch-up of B after 1,000 writes" if args.catchup_calls == 1000 else
               f"(2) catch-up of B after {args.catchup_calls} writes", catchup.caught_up,
               CATCHUP_TARGET_S, at_most=True, unit=" s", fmt=".2f"),
        Target("(3) calls/s with peers / alone", with_peers.rate / alone_run.rate,
               RATIO_TARGET, at_most=False, unit="x", fmt=".3f"),
    ]


def main():
    """Measure (1) to (3) and print the tables, then the targets."""
    args = parse_args()
    if args.image is None:
        args.image = corpus.photo(DEFAULT_PHOTO)
    if not args.image.is_file():
        raise SystemExit(f"replication.py: {args.image}: no such file")
    raise_on_sigterm()
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="imagepipe-replication-"))
    try:
        with ExitStack() as stack:  # stops every node and watcher, whatever happens
            targets = run(args, workdir, stack)
    except KeyboardInterrupt:
        raise SystemExit("replication.py: interrupted; every node started was stopped") from None
    finally:
        if args.keep:
            print(f"kept: {workdir} (logs in */twistd.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(["target", "measured", "goal", "result"], [t.row() for t in targets]))
    print(f"\nWhole run: {time.monotonic() - began:.0f} s.")


if __name__ == "__main__":
    main()
