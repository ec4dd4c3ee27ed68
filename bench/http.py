"""On-the-fly resizing over HTTP: imagepipe against thumbor, and cache hits through nginx.

The task: a real photo downscaled once to 2048 px on its long side (JPEG
quality 90, by default from the corpus ``Kleiber_by_Lukas_Baubkus.jpg``) is
served as a fit inside 512x512, JPEG quality 80, baseline, 4:2:0.  wrk
(Debian's, installed with apt-get when missing) loads each server on
loopback with a fixed number of connections.  One run measures

(1) misses, every request rendered from the source file: thumbor (the
    baseline; pinned version, installed with pip into its own virtualenv,
    default engine Pillow, file loader, no storage and no result storage,
    one process per CPU) and ``twistd imagepipe`` with ``engine = wand`` and
    with ``engine = pillow`` (``io_threads = 2``, no result cache), in
    ``--rounds`` blocks with the servers taking turns.  The requests ask for
    64 hard links of the source in turn: imagepipe renders identical
    requests in flight once (single flight), so a run on one URL would
    measure shared answers, not misses.  Each miss uses a new connection
    (``--keep-alive`` keeps them): thumbor's processes share one listening
    socket, and a few kept-alive connections can all land on one process
    and leave a core idle, which made its req/s vary by 1.7x run to run;
(2) hits: imagepipe with its result cache behind a real nginx running the
    shipped ``examples/nginx/imagepipe.conf`` (X-Accel-Redirect), the cache
    warmed by a first request;
(3) the RSS of a fresh imagepipe server (children included, sampled every
    100 ms) over ``--rss-requests`` misses: the mean of the last 20 % of the
    run against the mean of the middle 20 % (by elapsed time; the request
    rate is steady),

and prints markdown tables ending with the project's targets.  Latencies
are wrk's, merged over the blocks from its full histograms.

    python bench/http.py [--quick] [--miss-seconds 15] [--hit-seconds 10] [--rounds 3]
                         [--miss-connections 4] [--hit-connections 50] [--keep-alive]
                         [--rss-requests 10000] [--rss-engine wand] [--image PATH]
                         [--thumbor-venv DIR]

Run it with the project's virtualenv as root (apt-get); about 2 minutes on
a 2-CPU machine, which should otherwise be idle (see "other CPU").
"""

import importlib.util
import os
import sys
from importlib.machinery import PathFinder

if __name__ == "http":
    # bench/ is sys.path[0] for every script in it, so this file stands in
    # front of the standard library's http package: a sibling's (or our
    # own) ``import http.client`` lands here.  Hand over to the real one.
    _bench = os.path.dirname(os.path.abspath(__file__))
    _spec = PathFinder.find_spec(
        "http", [p for p in sys.path if os.path.abspath(p or os.curdir) != _bench])
    sys.modules["http"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["http"])

import argparse
import http.client
import io
import json
import platform
import resource
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import PIL
import psutil
from PIL import Image, ImageOps, JpegImagePlugin

import corpus
from common import (TWISTD, Server, Target, apt_install, convert_version, cpu_model,
                    free_port, last_lines, nginx, table, tool)

DEFAULT_PHOTO = "Kleiber_by_Lukas_Baubkus.jpg"
NGINX = "/usr/sbin/nginx"
DEFAULT_THUMBOR_VENV = corpus.CACHE / "thumbor-venv"

THUMBOR_VERSION = "7.8.0"
# Only needed when pip has to build something from source (no wheel).
THUMBOR_BUILD_DEPS = ("build-essential", "libcurl4-openssl-dev", "libssl-dev",
                      "libjpeg62-turbo-dev", "zlib1g-dev")
SOURCE_EDGE = 2048
SOURCE_QUALITY = 90
BOX = 512
QUALITY = 80
IO_THREADS = 2
# imagepipe runs twice per engine: rendering in its worker threads (the
# default), and in render processes, one per CPU (--render-processes).
RENDER_PROCESSES = os.cpu_count() or 1
NAMES = 64  # hard links of the source, asked for in turn by the misses
NAME = "bench-{:03d}.jpg"
NAME_PATTERN = "bench-%03d.jpg"  # the same, for wrk's Lua
IMAGEPIPE_PREFIX = "/r/"
IMAGEPIPE_URL = f"{IMAGEPIPE_PREFIX}s:{BOX}x{BOX}/q:{QUALITY}/f:jpg/"  # then the name
THUMBOR_URL = f"/unsafe/fit-in/{BOX}x{BOX}/filters:quality({QUALITY}):format(jpeg)/"
ENGINES = ("wand", "pillow")
WRK_TIMEOUT = 10  # seconds; a slower answer counts as an error, not a latency
WARMUP_SECONDS = 2
RSS_INTERVAL = 0.1
OTHER_CPU_TOLERATED = 0.1  # cores used by other processes before a figure is in doubt

# Servers get this environment without MAGICK_* and with the glibc arena
# limit that quickstart and the systemd unit set.
# thumbor matched to imagepipe's output: baseline JPEG (thumbor's default is
# progressive), EXIF orientation applied, the source read from disk on every
# request (its default storage keeps originals), no result storage.
THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ENGINE = 'thumbor.engines.pil'
RESPECT_ORIENTATION = True
QUALITY = {quality}
PROGRESSIVE_JPEG = False
ALLOW_UNSAFE_URL = True
"""

IMAGEPIPE_INI = """\
[network]
interface = 127.0.0.1
port = {port}
# No line per request, as thumbor at --log-level warning.
access_log =
[images]
path = {images}
engine = {engine}
io_threads = {io_threads}
render_processes = {render_processes}
[http]
cache_max_bytes = {cache_max_bytes}
{cache}
    [[native]]
    enabled = true
    prefix = {prefix}
"""

# wrk reports to the benchmark on one line: counts, errors and its whole
# latency histogram, so that blocks can be merged before percentiles.
# ``wrk ... -- LIMIT PATTERN NAMES``: the arguments of the parts below.
WRK_REPORT = r"""-- imagepipe bench/http.py: wrk's results as one JSON line.
local limit, pattern, names = 0, "", 0

function init(args)
  limit = tonumber(args[1]) or 0
  pattern = args[2] or ""
  names = tonumber(args[3]) or 0
end

function done(summary, latency, requests)
  local e = summary.errors
  local buckets = {}
  for i = 1, #latency do
    local value, count = latency(i)
    buckets[#buckets + 1] = string.format("[%d,%d]", value, count)
  end
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":[%s]}\n', summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(buckets, ",")))
end
"""

# Requests for PATTERN with 0 .. NAMES-1 in turn.
WRK_NAMES = r"""
local turn = 0

function request()
  turn = turn % names + 1
  return wrk.format(nil, string.format(pattern, turn - 1))
end
"""

# A run of LIMIT answers (one wrk thread): the thread stops and says so;
# wrk itself runs for its whole duration unless sent SIGINT, which the
# benchmark then does.
WRK_LIMIT = r"""
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    wrk.thread:stop()
    io.write("STOPPED\n")
    io.flush()
  end
end
"""


@dataclass(frozen=True)
class Load:
    """One or more wrk runs against one server, and the CPU used meanwhile."""

    requests: int  # answered with 2xx or 3xx
    errors: int  # non-2xx/3xx answers, socket errors and timeouts
    seconds: float
    latency: tuple  # (microseconds, count) pairs, ascending
    cpu: tuple  # CPU seconds of (the server, wrk, everything else)

    @property
    def per_second(self):
        """Good answers per second."""
        return self.requests / self.seconds

    def percentile_ms(self, q):
        """The ``q``-th percentile of the latency in milliseconds."""
        total = sum(count for _, count in self.latency)
        seen = 0
        for value, count in self.latency:
            seen += count
            if seen >= q / 100 * total:
                return value / 1000
        return float("nan")

    def cores(self):
        """CPU seconds per wall second: (server, wrk, everything else)."""
        return tuple(seconds / self.seconds for seconds in self.cpu)

    def row(self, name, engine, connections, baseline=None):
        """The load as table cells; ``baseline`` is thumbor's load, for the ratio."""
        ratio = f"{self.per_second / baseline.per_second:.2f}x" if baseline else "-"
        return [name, engine, str(connections), str(self.requests), str(self.errors),
                f"{self.per_second:.1f}", f"{self.percentile_ms(50):.1f}",
                f"{self.percentile_ms(95):.1f}", ratio,
                f"{1000 * self.cpu[0] / self.requests:.2f}",
                *(f"{cores:.2f}" for cores in self.cores())]


def merged(loads):
    """One ``Load`` made of several blocks against the same server."""
    histogram = {}
    for load in loads:
        for value, count in load.latency:
            histogram[value] = histogram.get(value, 0) + count
    return Load(sum(load.requests for load in loads), sum(load.errors for load in loads),
                sum(load.seconds for load in loads), tuple(sorted(histogram.items())),
                tuple(map(sum, zip(*(load.cpu for load in loads)))))


@dataclass(frozen=True)
class RssRun:
    """The RSS samples of one server over a fixed number of requests."""

    engine: str
    load: Load
    samples: tuple  # (seconds since the start, bytes)

    def window_mb(self, start, end):
        """The mean RSS in MB over the fraction ``start``..``end`` of the run."""
        last = self.samples[-1][0]
        chosen = [rss for at, rss in self.samples if start * last <= at <= end * last]
        return sum(chosen) / len(chosen) / 2**20

    @property
    def ratio(self):
        """The mean of the last 20 % over the mean of the middle 20 %."""
        return self.window_mb(0.8, 1.0) / self.window_mb(0.4, 0.6)

    def row(self):
        """The run as table cells."""
        return [f"imagepipe, {self.engine}, fresh server", str(self.load.requests),
                str(self.load.errors), f"{self.load.per_second:.1f}",
                f"{self.samples[0][1] / 2**20:.0f}", f"{self.window_mb(0.4, 0.6):.1f}",
                f"{self.window_mb(0.8, 1.0):.1f}", f"{self.ratio:.3f}x",
                f"{max(rss for _, rss in self.samples) / 2**20:.0f}"]


def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: by default 3 s of misses per server in one "
                             "round, 2 s of hits, 1,000 requests for RSS")
    parser.add_argument("--miss-seconds", type=float, default=15,
                        help="seconds of misses per server, over all rounds (default 15)")
    parser.add_argument("--hit-seconds", type=float, default=10,
                        help="seconds of cache hits through nginx (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="blocks the misses are split into, the servers taking turns "
                             "(default 3)")
    parser.add_argument("--miss-connections", type=int, default=4,
                        help="wrk connections for misses (default 4)")
    parser.add_argument("--hit-connections", type=int, default=50,
                        help="wrk connections for hits (default 50)")
    parser.add_argument("--io-threads", type=int, default=IO_THREADS,
                        help=f"imagepipe's [images] io_threads (default {IO_THREADS})")
    parser.add_argument("--render-processes", type=int, default=RENDER_PROCESSES,
                        help=f"imagepipe's [images] render_processes in its second run "
                             f"of each engine (default: one per CPU, {RENDER_PROCESSES})")
    parser.add_argument("--keep-alive", action="store_true",
                        help="keep connections open for misses (default: a new connection "
                             "per request, see the module docstring)")
    parser.add_argument("--rss-requests", type=int, default=10_000,
                        help="misses sent to a fresh server while its RSS is sampled "
                             "(default 10000)")
    parser.add_argument("--rss-engine", choices=ENGINES, default="wand",
                        help="engine of the server whose RSS is sampled (default wand, "
                             "imagepipe's default)")
    parser.add_argument("--image", type=Path,
                        help=f"source photo, downscaled to 2048 px first (default: "
                             f"{DEFAULT_PHOTO}, fetched from Debian when missing)")
    parser.add_argument("--thumbor-venv", type=Path, default=DEFAULT_THUMBOR_VENV,
                        help=f"virtualenv pip installs thumbor {THUMBOR_VERSION} into, kept "
                             f"between runs (default {DEFAULT_THUMBOR_VENV})")
    args = parser.parse_args()
    if args.quick:  # other defaults; options given still win
        parser.set_defaults(miss_seconds=3, hit_seconds=2, rounds=1, rss_requests=1_000)
        args = parser.parse_args()
    if args.image is None:
        args.image = corpus.photo(DEFAULT_PHOTO)
    if not args.image.is_file():
        raise SystemExit(f"http.py: {args.image}: no such file")
    return args


def thumbor_versions(venv):
    """The versions of thumbor and of its Pillow in ``venv``, or None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import json, importlib.metadata as m; "
         "print(json.dumps([m.version('thumbor'), m.version('pillow')]))"],
        capture_output=True, text=True)
    return tuple(json.loads(probe.stdout)) if probe.returncode == 0 else None


def prepare_thumbor(venv):
    """thumbor ``THUMBOR_VERSION`` in ``venv``, installed with pip unless there already.

    A failed install is retried once after apt-get installs the build
    dependencies.  Returns (thumbor version, Pillow version).
    """
    versions = thumbor_versions(venv)
    if versions and versions[0] == THUMBOR_VERSION:
        return versions
    print(f"installing thumbor {THUMBOR_VERSION} with pip into {venv} ...", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
               f"thumbor=={THUMBOR_VERSION}"]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode:
        print(f"pip failed ({last_lines(done.stderr, 1)}); adding build dependencies",
              flush=True)
        apt_install(THUMBOR_BUILD_DEPS)
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"http.py: pip install thumbor=={THUMBOR_VERSION} failed: "
                             f"{last_lines(done.stderr)}")
    versions = thumbor_versions(venv)
    if not versions or versions[0] != THUMBOR_VERSION:
        raise SystemExit(f"http.py: thumbor {THUMBOR_VERSION} does not load from {venv}")
    return versions


def make_source(image, directory):
    """``image`` upright, at most 2048 px, JPEG quality 90, as ``NAMES`` hard links.

    Returns the path of the first.
    """
    with Image.open(image) as photo:
        upright = ImageOps.exif_transpose(photo).convert("RGB")
    upright.thumbnail((SOURCE_EDGE, SOURCE_EDGE), Image.Resampling.LANCZOS)
    directory.mkdir(parents=True)
    first = directory / NAME.format(0)
    upright.save(first, quality=SOURCE_QUALITY)
    for index in range(1, NAMES):
        os.link(first, directory / NAME.format(index))
    return first


def thumbor_server(venv, workdir, images):
    """thumbor on a free port, one process per CPU (``--processes 0``)."""
    directory = workdir / "thumbor"
    directory.mkdir()
    conf = directory / "thumbor.conf"
    conf.write_text(THUMBOR_CONF.format(root=str(images), quality=QUALITY))
    port = free_port()
    command = [str(venv / "bin" / "thumbor"), "--conf", str(conf), "--ip", "127.0.0.1",
               "--port", str(port), "--processes", "0", "--log-level", "warning"]
    return Server("thumbor", command, port, directory)


def imagepipe_server(workdir, images, engine, cache_dir=None, label="", processes=0):
    """``twistd imagepipe`` on a free port: no result cache, or one in ``cache_dir``."""
    directory = workdir / f"imagepipe-{engine}{label}"
    directory.mkdir()
    port = free_port()
    if cache_dir is None:
        cache_max_bytes, cache = "0", ""
    else:
        cache_max_bytes = "1GiB"
        cache = f"cache_path = {cache_dir}\naccel_redirect = /_imagepipe/"
    ini = directory / "imagepipe.ini"
    ini.write_text(IMAGEPIPE_INI.format(port=port, images=images, engine=engine,
                                        io_threads=IO_THREADS, render_processes=processes,
                                        cache_max_bytes=cache_max_bytes,
                                        cache=cache, prefix=IMAGEPIPE_PREFIX))
    command = [str(TWISTD), "-n", "--pidfile=", "imagepipe", "-c", str(ini)]
    return Server(f"imagepipe ({engine}{label})", command, port, directory)


def nginx_server(workdir, upstream_port, images, cache_dir):
    """nginx with the shipped site file in front of imagepipe on ``upstream_port``.

    The site file is included as it is, placeholders filled, in a main config
    that keeps every nginx path in the work directory.
    """
    base = workdir / "nginx"
    port = free_port()
    try:
        site = nginx.site_config(port, upstream_port, images, cache_dir)
    except ValueError as error:
        raise SystemExit(f"http.py: {error}") from None
    nginx.lay_out(base, site, workers="auto", connections=1024, log_level="warn")
    return Server("nginx", nginx.command(NGINX, base), port, base)


def get(port, path):
    """GET ``path`` from 127.0.0.1:``port``: status, headers and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def renderer_counts(server):
    """imagepipe's on-the-fly counts from ``GET /status``: renders, cache_hits, shared..."""
    status, _, body = get(server.port, "/status")
    if status != 200:
        raise SystemExit(f"http.py: {server.name} answered {status} to /status")
    return json.loads(body)["on_the_fly"]


def describe_counts(counts):
    """Renderer counts in a few words."""
    return (f"{counts['renders']} renders, {counts['shared']} shared, "
            f"{counts['cache_hits']} cache hits, {counts['errors']} errors")


@dataclass(frozen=True)
class Output:
    """What a server answered to the task, checked with Pillow."""

    size: tuple
    length: int
    progressive: bool
    subsampling: str

    def describe(self):
        """The output in a few words."""
        return (f"{self.size[0]}x{self.size[1]}, {self.length} bytes, "
                f"{'progressive' if self.progressive else 'baseline'}, {self.subsampling}")


def check_output(server, url, source_size):
    """GET ``url`` + the first name once; its ``Output``, or exit unless the task's result."""
    path = url + NAME.format(0)
    status, headers, body = get(server.port, path)
    kind = headers.get("Content-Type", "")
    if status != 200 or not kind.startswith("image/jpeg"):
        raise SystemExit(f"http.py: {server.name} answered {status} {kind!r} to {path}: "
                         f"{body[:300]!r}\n{server.log()[-3000:]}")
    with Image.open(io.BytesIO(body)) as output:
        size = output.size
        progressive = bool(output.info.get("progressive"))
        sampling = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(
            JpegImagePlugin.get_sampling(output), "?")
    scale = BOX / max(source_size)
    expected = tuple(round(side * scale) for side in source_size)
    if any(abs(a - b) > 1 for a, b in zip(size, expected)):
        raise SystemExit(f"http.py: {server.name} made a {size} image, not {expected}")
    return Output(size, len(body), progressive, sampling)


def machine_busy():
    """Busy CPU seconds of the whole machine, hypervisor steal included."""
    machine = psutil.cpu_times()
    return (machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            + machine.steal)


def process_cpu(processes):
    """CPU seconds used so far by ``processes`` (those gone are skipped)."""
    total = 0.0
    for process in processes:
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def children_cpu():
    """CPU seconds of the child processes reaped so far (wrk, once it has ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Wrk:
    """wrk with the benchmark's Lua scripts, one thread."""

    def __init__(self, path, workdir):
        self.path = path
        self.workdir = workdir

    def version(self):
        """wrk's version string."""
        shown = subprocess.run([self.path, "--version"], capture_output=True, text=True)
        return (shown.stdout + shown.stderr).split()[1]

    def _script(self, names, limit):
        """The Lua script for a run, written on first use."""
        script = self.workdir / f"wrk-{'names-' if names else ''}{'limit-' if limit else ''}.lua"
        if not script.exists():
            script.write_text(WRK_REPORT + (WRK_NAMES if names else "")
                              + (WRK_LIMIT if limit else ""))
        return script

    def run(self, server, url, connections, seconds, *, names=False, limit=0, close=False,
            behind=()):
        """Load ``server`` at ``url`` + a source name; a ``Load``.

        ``names`` asks for all ``NAMES`` names in turn, else the first only;
        ``limit`` > 0 stops after that many answers (``seconds`` is then a
        ceiling); ``close`` asks for a new connection for every request.
        The server CPU is that of its processes and of the servers
        ``behind`` it, wrk's that of the reaped child, the rest the
        machine's busy time less both.
        """
        command = [self.path, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                   f"--timeout={WRK_TIMEOUT}s", *(["-H", "Connection: close"] if close else []),
                   "-s", str(self._script(names, limit)),
                   f"http://127.0.0.1:{server.port}{url}{NAME.format(0)}",
                   "--", str(limit), url + NAME_PATTERN, str(NAMES)]
        processes = [p for each in (server, *behind) for p in each.processes()]
        before = (process_cpu(processes), children_cpu(), machine_busy())
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        output = []
        for line in process.stdout:
            output.append(line)
            if line == "STOPPED\n":
                process.send_signal(signal.SIGINT)  # wrk then reports at once
        stderr = process.stderr.read()
        process.wait()
        after = (process_cpu(processes), children_cpu(), machine_busy())
        lines = [line for line in output if line.startswith("BENCH ")]
        if process.returncode or not lines:
            raise SystemExit(f"http.py: wrk failed against {server.name}:\n"
                             f"{''.join(output)}{stderr}")
        report = json.loads(lines[-1][len("BENCH "):])
        errors = report["errors"]
        bad = errors["status"] + errors["connect"] + errors["read"] + errors["write"] \
            + errors["timeout"]
        server_cpu, wrk_cpu, machine = (b - a for a, b in zip(before, after))
        return Load(report["requests"] - errors["status"], bad,
                    report["duration_us"] / 1e6, tuple(map(tuple, report["latency_us"])),
                    (server_cpu, wrk_cpu, machine - server_cpu - wrk_cpu))


class RssSampler(threading.Thread):
    """Samples a server's RSS every ``interval`` seconds until stopped."""

    def __init__(self, server, interval=RSS_INTERVAL):
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.samples = []
        self._finished = threading.Event()

    def run(self):
        began = time.perf_counter()
        while True:
            self.samples.append((time.perf_counter() - began, self.server.rss()))
            if self._finished.wait(self.interval):
                return

    def stop(self):
        """Stop sampling; the (seconds, bytes) samples."""
        self._finished.set()
        self.join()
        return tuple(self.samples)


def measure_misses(wrk, servers, connections, seconds, rounds, close):
    """Misses against every server in ``rounds`` blocks, taking turns; merged ``Load``s.

    ``servers`` maps a name to (``Server``, URL before the source name).
    Each server first gets an untimed warm-up; each round starts with the
    next server, so that none is always first after another's block.
    """
    for server, url in servers.values():
        wrk.run(server, url, connections, WARMUP_SECONDS, names=True, close=close)
    blocks = {name: [] for name in servers}
    names = list(servers)
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:
            server, url = servers[name]
            blocks[name].append(wrk.run(server, url, connections, seconds / rounds,
                                        names=True, close=close))
    return {name: merged(loads) for name, loads in blocks.items()}


def measure_hits(wrk, workdir, images, connections, seconds, source_size):
    """Cache hits through nginx in front of imagepipe with a result cache.

    Returns the ``Load``, the first and second answers' ``Output`` and
    imagepipe's counts at the end.
    """
    cache_dir = workdir / "result-cache"
    cache_dir.mkdir()
    with imagepipe_server(workdir, images, "pillow", cache_dir, "-cache") as upstream, \
            nginx_server(workdir, upstream.port, images, cache_dir) as front:
        first = check_output(front, IMAGEPIPE_URL, source_size)  # renders, fills the cache
        second = check_output(front, IMAGEPIPE_URL, source_size)
        wrk.run(front, IMAGEPIPE_URL, connections, WARMUP_SECONDS)
        load = wrk.run(front, IMAGEPIPE_URL, connections, seconds, behind=[upstream])
        return load, (first, second), renderer_counts(upstream)


def measure_rss(wrk, workdir, images, engine, requests, connections, close, source_size):
    """``requests`` misses against a fresh server while its RSS is sampled; an ``RssRun``."""
    with imagepipe_server(workdir, images, engine, label="-rss") as server:
        check_output(server, IMAGEPIPE_URL, source_size)
        sampler = RssSampler(server)
        sampler.start()
        load = wrk.run(server, IMAGEPIPE_URL, connections, 3600, names=True, limit=requests,
                       close=close)
        samples = sampler.stop()
    return RssRun(engine, load, samples)


def print_header(wrk, source, source_size, image, versions, outputs, thumbor_workers):
    """The machine, the programs, the source and what each server answered.

    ``versions`` are thumbor's and its Pillow's.
    """
    thumbor_version, thumbor_pillow = versions
    nginx_shown = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    print("# imagepipe on-the-fly resizing benchmark (HTTP)\n")
    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, "
          f"Python {platform.python_version()}")
    print(f"load: wrk {wrk.version()}, one thread, on loopback; "
          f"{nginx_shown.removeprefix('nginx version: ')}")
    print(f"thumbor: {thumbor_version} (Pillow {thumbor_pillow}), --processes 0 = "
          f"{thumbor_workers} worker processes; file loader, no storage, no result storage, "
          f"engine thumbor.engines.pil, RESPECT_ORIENTATION, PROGRESSIVE_JPEG off "
          f"(thumbor always sets optimize=True on JPEG); URL {THUMBOR_URL}NAME")
    print(f"imagepipe: Pillow {PIL.__version__}, {convert_version()} (convert), "
          f"io_threads = {IO_THREADS}, rendering in the threads or in render_processes = "
          f"{RENDER_PROCESSES}, "
          f"MALLOC_ARENA_MAX=2, misses without result cache; URL {IMAGEPIPE_URL}NAME")
    print(f"source: {image.name} -> NAME = {NAME_PATTERN % 0} .. {NAME_PATTERN % (NAMES - 1)} "
          f"(hard links), {source_size[0]}x{source_size[1]}, "
          f"{source.stat().st_size} bytes, JPEG quality {SOURCE_QUALITY}")
    print(f"task: fit inside {BOX}x{BOX}, JPEG quality {QUALITY}")
    for name, output in outputs.items():
        print(f"  {name}: {output.describe()}")
    print(flush=True)


def miss_runs(args, wrk, workdir, images, source, source_size, versions):
    """Misses against thumbor and imagepipe's two engines, with the header.

    Starts the servers, checks and prints what each answers, then measures.
    Returns the ``Load`` of each and imagepipe's counts.
    """
    processes = RENDER_PROCESSES
    with thumbor_server(args.thumbor_venv, workdir, images) as thumbor, \
            imagepipe_server(workdir, images, "wand") as wand, \
            imagepipe_server(workdir, images, "pillow") as pillow, \
            imagepipe_server(workdir, images, "wand", label="-processes",
                             processes=processes) as wand_processes, \
            imagepipe_server(workdir, images, "pillow", label="-processes",
                             processes=processes) as pillow_processes:
        servers = {"thumbor": (thumbor, THUMBOR_URL),
                   "wand": (wand, IMAGEPIPE_URL),
                   "pillow": (pillow, IMAGEPIPE_URL),
                   "wand, processes": (wand_processes, IMAGEPIPE_URL),
                   "pillow, processes": (pillow_processes, IMAGEPIPE_URL)}
        outputs = {"thumbor" if name == "thumbor" else f"imagepipe {name}":
                   check_output(server, url, source_size)
                   for name, (server, url) in servers.items()}
        print_header(wrk, source, source_size, args.image, versions, outputs,
                     len(thumbor.processes()) - 1)
        misses = measure_misses(wrk, servers, args.miss_connections, args.miss_seconds,
                                args.rounds, close=not args.keep_alive)
        return misses, {name: renderer_counts(server) for name, (server, _) in servers.items()
                        if name != "thumbor"}


_MODES = (("wand", "threads"), ("pillow", "threads"),
          ("wand, processes", "render processes"), ("pillow, processes", "render processes"))


def print_results(args, misses, counts, hits, hit_outputs, hit_counts, rss):
    """The tables, the notes and warnings, then the targets."""
    baseline = misses["thumbor"]
    print(table(["server", "engine", "connections", "requests", "errors", "req/s", "p50 ms",
                 "p95 ms", "vs thumbor", "server CPU ms/req", "server CPU", "wrk CPU",
                 "other CPU"], [
        baseline.row("thumbor, miss", "Pillow", args.miss_connections),
        *(misses[name].row(f"imagepipe, miss, {mode}", name.split(",")[0],
                           args.miss_connections, baseline)
          for name, mode in _MODES),
        hits.row("nginx + imagepipe cache, hit", "-", args.hit_connections),
    ]))
    print(f"\nCPU columns in cores, except ms/req. misses: {args.rounds} round(s) of "
          f"{args.miss_seconds / args.rounds:g} s per server after {WARMUP_SECONDS} s of "
          f"warm-up each, "
          f"{'kept-alive connections' if args.keep_alive else 'a new connection per request'}"
          f"; imagepipe's counts (GET /status): "
          + "; ".join(f"{name}: {describe_counts(counts[name])}" for name in counts) + ".")
    print(f"hits: {args.hit_seconds:g} s on kept-alive connections; answers "
          f"{hit_outputs[0].describe()} (first) and {hit_outputs[1].describe()} (cached); "
          f"imagepipe behind nginx: {describe_counts(hit_counts)}; the server CPU is "
          f"nginx's and imagepipe's.\n")
    print(table(["RSS run", "requests", "errors", "req/s", "RSS first MB",
                 "middle 20 % MB", "last 20 % MB", "last / middle", "peak MB"], [rss.row()]))
    print(f"\n{rss.load.requests} misses at {args.miss_connections} connections against a "
          f"fresh imagepipe server with the {rss.engine} engine, RSS (children included) "
          f"sampled every {RSS_INTERVAL * 1000:.0f} ms: {len(rss.samples)} samples.\n")
    loads = [*misses.values(), hits, rss.load]
    other = max(load.cores()[2] for load in loads)
    if other > OTHER_CPU_TOLERATED:
        print(f"WARNING: other processes used up to {other:.2f} CPU during these runs: "
              f"req/s are understated; rerun on an idle machine.\n")
    if any(load.errors for load in loads):
        print("WARNING: some requests failed (the errors column); they are not counted "
              "in req/s.\n")
    if any(c["shared"] or c["cache_hits"] for c in counts.values()):
        print("WARNING: imagepipe shared or cached some answers during the misses: not "
              "every request was rendered.\n")

    goals = {"wand": 1.0, "pillow": 1.5}
    targets = [
        *(Target(f"misses, imagepipe {name.split(',')[0]} ({mode}) / thumbor req/s",
                 misses[name].per_second / baseline.per_second, goals[name.split(",")[0]],
                 at_most=False, unit="x")
          for name, mode in _MODES),
        Target("hits through nginx, req/s", hits.per_second, 5000, at_most=False, unit="",
               fmt=".0f"),
        Target(f"RSS last 20 % / middle 20 % ({rss.engine}, {rss.load.requests} requests)",
               rss.ratio, 1.05, at_most=True, unit="x", fmt=".3f"),
    ]
    print(table(["target", "measured", "goal", "result"], [t.row() for t in targets]))


def main():
    """Misses, hits and RSS; print the tables and the targets."""
    args = parse_args()
    global IO_THREADS, RENDER_PROCESSES
    IO_THREADS, RENDER_PROCESSES = args.io_threads, args.render_processes
    # The servers run in sessions of their own; SIGTERM must stop them too.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    began = time.perf_counter()
    wrk_path = tool("wrk", "wrk")
    tool(NGINX, "nginx-light")
    versions = prepare_thumbor(args.thumbor_venv)
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-") as temp:
        workdir = Path(temp)
        os.chmod(workdir, 0o755)  # nginx's workers (nobody) read the result cache in here
        images = workdir / "images"
        source = make_source(args.image, images)
        with Image.open(source) as opened:
            source_size = opened.size
        wrk = Wrk(wrk_path, workdir)
        misses, counts = miss_runs(args, wrk, workdir, images, source, source_size, versions)
        hits, hit_outputs, hit_counts = measure_hits(wrk, workdir, images, args.hit_connections,
                                                     args.hit_seconds, source_size)
        rss = measure_rss(wrk, workdir, images, args.rss_engine, args.rss_requests,
                          args.miss_connections, not args.keep_alive, source_size)
    print_results(args, misses, counts, hits, hit_outputs, hit_counts, rss)
    print(f"\nWhole run: {time.perf_counter() - began:.0f} s.")


if __name__ == "__main__":
    main()
