"""Storing one large JPEG: convert processes, the engine, and the server under load.

Every measurement does the same work: the 6028x3391 corpus JPEG becomes a
1024x1024 fit, a 250x250 fit ("_m") and a 50x50 centre crop ("_s"), JPEG
quality 85.  One run measures

(a) the original imagepipe: one ``convert`` process per variant with the
    command lines of its README, one after the other, reading the file;
(b) ``WandEngine.render`` in this process;
(c) one ``store_image`` over XML-RPC against a real ``twistd imagepipe``
    with io_threads = 1, timed from the client, base64 encoding included;
(d) store_image throughput with io_threads = 1 (2 client threads) and
    io_threads = 2 (4 client threads);
(e) the peak RSS of the server (children included) over those calls, for
    io_threads = 2 with and without MALLOC_ARENA_MAX=2,

and prints markdown tables, ending with the project's targets.

Run it with the project's virtualenv (twistd is taken from beside the
interpreter):

    python bench/store.py [--calls 200] [--repeat 7] [--image PATH]
"""

import argparse
import base64
import http.client
import io
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = ROOT.parent / "shared" / "corpus" / "Kleiber_by_Lukas_Baubkus.jpg"
WALLPAPER_PACKAGE = "lomiri-wallpapers-20.04"
WALLPAPER_PATH = "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"
TWISTD = Path(sys.executable).with_name("twistd")

QUALITY = 85
SIZES = {"": [1024, 1024], "_m": [250, 250], "_s": [50, 50]}
CROPS = {"": 0, "_m": 0, "_s": 1}
WARMUP = 2

# Child processes get this process's environment without the MAGICK_*
# variables that magick.start() sets here for (b), and without any
# MALLOC_ARENA_MAX, which (e) sets explicitly.
CLEAN_ENV = {name: value for name, value in os.environ.items()
             if not name.startswith("MAGICK_") and name != "MALLOC_ARENA_MAX"}
# The original imagepipe.ini handed MAGICK_THREAD_LIMIT = 1 to convert; the
# engine and the server run with the same limit (the config default).
CONVERT_ENV = dict(CLEAN_ENV, MAGICK_THREAD_LIMIT="1")


@dataclass(frozen=True)
class Target:
    """A figure the project aims for: ``value`` compared with ``goal``."""

    name: str
    value: float
    goal: float
    at_most: bool  # True: value <= goal passes; False: value >= goal passes
    unit: str

    def row(self):
        """Name, value, goal and PASS/MISS as table cells."""
        met = self.value <= self.goal if self.at_most else self.value >= self.goal
        sign = "<=" if self.at_most else ">="
        return [self.name, f"{self.value:.2f}{self.unit}", f"{sign} {self.goal:g}{self.unit}",
                "PASS" if met else "MISS"]


@dataclass(frozen=True)
class LoadResult:
    """One throughput run against a server."""

    io_threads: int
    env: str
    clients: int
    calls: int
    calls_per_s: float
    peak_rss_mb: float
    server_cores: float  # CPU seconds of the server per wall second
    client_cores: float  # CPU seconds of this process per wall second

    def row(self):
        """The run as table cells."""
        return [str(self.io_threads), self.env or "-", str(self.clients), str(self.calls),
                f"{self.calls_per_s:.2f}", f"{self.peak_rss_mb:.0f}",
                f"{self.server_cores:.2f}", f"{self.client_cores:.2f}"]


def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200,
                        help="store_image calls per throughput / peak RSS run (default 200)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed runs behind each median of (a), (b), (c) (default 7)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE,
                        help="source JPEG (default: the corpus Kleiber wallpaper, fetched "
                             "from Debian when missing)")
    return parser.parse_args()


def source_image(path, workdir):
    """The source file: ``path``, or the wallpaper fetched into ``workdir`` when missing."""
    if path.is_file():
        return path
    if path != DEFAULT_IMAGE:
        raise SystemExit(f"store.py: {path}: no such file")
    return fetch_wallpaper(workdir)


def fetch_wallpaper(workdir):
    """Extract the Kleiber wallpaper from its Debian package, downloaded with apt-get."""
    print(f"{DEFAULT_IMAGE} is missing: fetching it from {WALLPAPER_PACKAGE}", flush=True)
    debs = workdir / "debs"
    debs.mkdir()
    done = subprocess.run(["apt-get", "download", WALLPAPER_PACKAGE], cwd=debs,
                          capture_output=True, text=True)
    packages = list(debs.glob("*.deb"))
    if done.returncode or not packages:
        raise SystemExit(f"store.py: apt-get download {WALLPAPER_PACKAGE} failed (run "
                         f"apt-get update first?):\n{done.stderr.strip()}")
    subprocess.run(["dpkg-deb", "-x", str(packages[0]), str(debs / "x")], check=True)
    return debs / "x" / WALLPAPER_PATH


def write_config(directory, io_threads, port=0):
    """Write an imagepipe.ini in ``directory`` (images under ``images/``); return its path."""
    (directory / "images").mkdir(parents=True)
    config = directory / "imagepipe.ini"
    config.write_text(f"[network]\ninterface = 127.0.0.1\nport = {port}\n"
                      f"[images]\npath = images\nio_threads = {io_threads}\n")
    return config


def start_engine(workdir):
    """Configure ImageMagick as the server does and build its engine.

    Returns the engine and the ImageMagick version Wand loaded.
    """
    from imagepipe import config as configuration
    from imagepipe.imaging import magick

    config = configuration.load(str(write_config(workdir / "engine", io_threads=1)))
    status = magick.start(config.imagemagick)  # before anything imports Wand

    from imagepipe.imaging.wand_engine import WandEngine
    from imagepipe.node import image_limits

    return WandEngine(image_limits(config), status.formats), status.version


def engine_variants():
    """The three variants as ``VariantSpec`` values, in the order of ``SIZES``."""
    from imagepipe.imaging import VariantSpec
    from imagepipe.imaging.formats import by_name
    from imagepipe.imaging.geometry import Mode

    jpeg = by_name("jpg")
    return [VariantSpec(tuple(box), Mode.CROP if CROPS[suffix] else Mode.FIT, jpeg)
            for suffix, box in SIZES.items()]


def convert_commands(image, outdir):
    """The README's command lines, one per variant, writing ``outdir/a{suffix}.jpg``."""
    commands = []
    for suffix, (width, height) in SIZES.items():
        if CROPS[suffix]:
            resize = [f"{width}x{height}^", "-gravity", "center",
                      "-crop", f"{width}x{height}+0+0!", "+repage"]
        else:
            resize = [f"{width}x{height}>"]
        commands.append(["convert", str(image), "-resize", *resize, "-quality", str(QUALITY),
                         str(outdir / f"a{suffix}.jpg")])
    return commands


def run_convert(commands):
    """Run the convert processes one after the other."""
    for command in commands:
        subprocess.run(command, env=CONVERT_ENV, check=True)


def timed(function, repeat, warmup=WARMUP):
    """Call ``function`` ``warmup`` times, then ``repeat`` timed times; the seconds taken."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def free_port():
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A ``twistd -n imagepipe`` child process on a free port, stopped on exit."""

    def __init__(self, directory, io_threads, extra_env=None):
        self.directory = directory
        self.images = directory / "images"
        self.io_threads = io_threads
        self.env = dict(CLEAN_ENV, PYTHONUNBUFFERED="1", **(extra_env or {}))
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        """The XML-RPC endpoint."""
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self):
        config = write_config(self.directory, self.io_threads, self.port)
        with open(self.directory / "twistd.log", "wb") as log:
            self.process = subprocess.Popen(
                [str(TWISTD), "-n", "--pidfile=", "imagepipe", "-c", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, env=self.env)
        self._wait_listening()
        return self

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(30)

    def _wait_listening(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "twistd.log").read_text(errors="replace")
                raise SystemExit(f"store.py: imagepipe exited ({self.process.returncode}):"
                                 f"\n{log}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise SystemExit(f"store.py: imagepipe did not listen on port {self.port}")


def store_arguments(payload, path):
    """The ``store_image`` arguments for the task, with ``payload`` as the image."""
    return (payload, path, "", SIZES, 0, CROPS, {"quality": QUALITY})


def rpc_store(proxy, data, path):
    """One store_image call through xmlrpc.client, base64 encoding included."""
    payload = base64.b64encode(data).decode("ascii")
    answer = proxy.store_image(*store_arguments(payload, path))
    if answer != "OK":
        raise RuntimeError(f"store_image answered {answer!r}")


def post_stores(port, body, calls, start):
    """Send the ready-made request ``body`` ``calls`` times on one kept-alive connection.

    One untimed call first (warm-up), then ``start.wait()`` so that every
    client thread begins the timed calls together.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for index in range(calls + 1):
            if index == 1:
                start.wait()
            connection.request("POST", "/", body, {"Content-Type": "text/xml"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
            xmlrpc.client.loads(answer)  # raises Fault on a fault answer
    finally:
        connection.close()


class PeakRss(threading.Thread):
    """Samples the RSS of a process and all its children every ``interval`` seconds."""

    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._finished = threading.Event()

    def _rss(self):
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def run(self):
        while True:
            self.peak = max(self.peak, self._rss())
            if self._finished.wait(self.interval):
                return

    def stop(self):
        """Stop sampling; the peak in bytes."""
        self._finished.set()
        self.join()
        return self.peak


def cpu_seconds(process):
    """User + system CPU seconds used so far by ``process`` and its children."""
    processes = [process, *process.children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def load_run(workdir, data, io_threads, clients, calls, extra_env=None):
    """Throughput and peak RSS of a server doing ``calls`` store_image calls.

    The client must not steal the server's CPU on this small machine, so each
    client thread marshals its XML-RPC request (base64 payload included) once,
    before timing, and then POSTs the same bytes with http.client on one
    kept-alive connection; the only per-call client work is the socket copy
    and parsing the tiny answer.  The CPU used by this process during the
    timed calls is reported beside the result to show that it stays small.
    """
    env_text = " ".join(f"{k}={v}" for k, v in (extra_env or {}).items())
    directory = workdir / f"load-{io_threads}t-{clients}c{'-' + env_text if env_text else ''}"
    per_client = -(-calls // clients)
    payload = base64.b64encode(data).decode("ascii")
    bodies = [xmlrpc.client.dumps(store_arguments(payload, f"load/c{n}.jpg"),
                                  "store_image").encode("utf-8")
              for n in range(clients)]
    start = threading.Barrier(clients + 1)
    failures = []

    def client(body):
        try:
            post_stores(server.port, body, per_client, start)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
            start.abort()

    with Server(directory, io_threads, extra_env) as server:
        sampler = PeakRss(server.process.pid)
        sampler.start()
        threads = [threading.Thread(target=client, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        server_process, this_process = psutil.Process(server.process.pid), psutil.Process()
        try:
            start.wait()
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        server_cpu, client_cpu = cpu_seconds(server_process), cpu_seconds(this_process)
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(server_process) - server_cpu
        client_cpu = cpu_seconds(this_process) - client_cpu
        peak = sampler.stop()
    if failures:
        raise SystemExit(f"store.py: a store_image call failed: {failures[0]}")
    return LoadResult(io_threads=io_threads, env=env_text, clients=clients,
                      calls=per_client * clients, calls_per_s=per_client * clients / wall,
                      peak_rss_mb=peak / 2**20, server_cores=server_cpu / wall,
                      client_cores=client_cpu / wall)


def dimensions(blobs):
    """The width x height of each encoded image, decoded with Pillow."""
    return [Image.open(io.BytesIO(blob)).size for blob in blobs]


def variant_files(directory, stem):
    """The encoded bytes of the variants stored as ``directory/stem{suffix}.jpg``."""
    return [(directory / f"{stem}{suffix}.jpg").read_bytes() for suffix in SIZES]


def table(headers, rows):
    """A markdown table; columns after the first are right-aligned."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def timing_row(name, seconds):
    """Median, min and max in ms, and the number of runs, as table cells."""
    return [name, f"{1000 * statistics.median(seconds):.0f}", f"{1000 * min(seconds):.0f}",
            f"{1000 * max(seconds):.0f}", str(len(seconds))]


def convert_version():
    """The first line of ``convert -version``."""
    out = subprocess.run(["convert", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].removeprefix("Version: ")


def main():
    """Measure (a) to (e) and print the tables."""
    args = parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-") as temp:
        workdir = Path(temp)
        image = source_image(args.image, workdir)
        data = image.read_bytes()
        engine, wand_version = start_engine(workdir)
        width, height = Image.open(image).size
        print("# imagepipe store benchmark\n")
        print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
              f"Linux {platform.release()}, Python {platform.python_version()}")
        print(f"ImageMagick: convert {convert_version()}; Wand loads {wand_version}")
        print(f"image: {image.name}, {width}x{height}, {len(data)} bytes")
        print(f"task: {SIZES} with crop {CROPS}, JPEG quality {QUALITY}; "
              f"MAGICK_THREAD_LIMIT=1 everywhere\n", flush=True)

        commands = convert_commands(image, workdir)
        convert_times = timed(lambda: run_convert(commands), args.repeat, warmup=1)
        variants = engine_variants()
        from imagepipe.imaging import EncodeOptions
        engine_times = timed(lambda: engine.render(data, variants, EncodeOptions(quality=QUALITY)),
                             args.repeat)
        with Server(workdir / "rpc", io_threads=1) as server:
            proxy = xmlrpc.client.ServerProxy(server.url)
            rpc_times = timed(lambda: rpc_store(proxy, data, "rpc/k.jpg"), args.repeat)
            stored = variant_files(server.images / "rpc", "k")
        sizes = {"a": dimensions(variant_files(workdir, "a")),
                 "b": dimensions(engine.render(data, variants, EncodeOptions(quality=QUALITY))),
                 "c": dimensions(stored)}
        same = "same in (a), (b), (c)" if len({tuple(s) for s in sizes.values()}) == 1 \
            else f"DIFFER: {sizes}"
        print("outputs: " + ", ".join(f"{w}x{h}" for w, h in sizes["b"]) + f" ({same})\n")

        print(table(["measurement", "median ms", "min ms", "max ms", "runs"], [
            timing_row("(a) convert x 3, sequential", convert_times),
            timing_row("(b) WandEngine.render in-process", engine_times),
            timing_row("(c) store_image over XML-RPC, io_threads=1", rpc_times),
        ]) + "\n", flush=True)

        loads = [load_run(workdir, data, 1, 2, args.calls),
                 load_run(workdir, data, 2, 4, args.calls),
                 load_run(workdir, data, 2, 4, args.calls, {"MALLOC_ARENA_MAX": "2"})]
        print(table(["io_threads", "server env", "clients", "calls", "calls/s",
                     "peak RSS MB", "server CPU (cores)", "client CPU (cores)"],
                    [run.row() for run in loads]) + "\n")

    one, two, arena = loads
    median = statistics.median
    targets = [
        Target("(a)/(b) engine vs convert", median(convert_times) / median(engine_times),
               9, at_most=False, unit="x"),
        Target("(c)/(b) XML-RPC vs engine", median(rpc_times) / median(engine_times),
               1.2, at_most=True, unit="x"),
        Target("(d) calls/s, 2 threads / 1 thread", two.calls_per_s / one.calls_per_s,
               1.8, at_most=False, unit="x"),
        Target("(e) peak RSS, io_threads=2, MALLOC_ARENA_MAX=2", arena.peak_rss_mb,
               250, at_most=True, unit=" MB"),
    ]
    print(table(["target", "measured", "goal", "result"], [t.row() for t in targets]))
    print(f"\n(e) without MALLOC_ARENA_MAX: {two.peak_rss_mb:.0f} MB; "
          f"whole run took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
