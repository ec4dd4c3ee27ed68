"""Storing one large JPEG: convert processes, the engine, and the server under load.

Every measurement does the same work: a 6028x3391 photo (Kleiber, from
Debian's lomiri-wallpapers-20.04, fetched by ``corpus.py``) becomes a
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
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import psutil
from PIL import Image

from imagepipe import config as configuration
from imagepipe.imaging import EncodeOptions, VariantSpec, magick
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.geometry import Mode

import corpus
from common import Target, convert_version, cpu_model, imagepipe, table

DEFAULT_PHOTO = "Kleiber_by_Lukas_Baubkus.jpg"

QUALITY = 85
SIZES = {"": [1024, 1024], "_m": [250, 250], "_s": [50, 50]}
CROPS = {"": 0, "_m": 0, "_s": 1}
OPTIONS = EncodeOptions(quality=QUALITY)
WARMUP = 2
OTHER_CPU_TOLERATED = 0.1  # cores used by other processes before (d) is in doubt

# Child processes get this process's environment without the MAGICK_*
# variables that magick.start() sets here for (b), and without any
# MALLOC_ARENA_MAX, which (e) sets explicitly.
CLEAN_ENV = {name: value for name, value in os.environ.items()
             if not name.startswith("MAGICK_") and name != "MALLOC_ARENA_MAX"}
# The original imagepipe.ini handed MAGICK_THREAD_LIMIT = 1 to convert; the
# engine and the server run with the same limit (the config default).
CONVERT_ENV = dict(CLEAN_ENV, MAGICK_THREAD_LIMIT="1")


@dataclass(frozen=True)
class LoadResult:
    """One throughput run against a server."""

    io_threads: int
    env: str
    clients: int
    calls: int
    calls_per_s: float
    peak_rss_mb: float
    cores: tuple  # CPU seconds per wall second: (server, this client, everything else)

    def row(self):
        """The run as table cells."""
        server = f"io_threads={self.io_threads}" + (f", {self.env}" if self.env else "")
        return [server, str(self.clients), str(self.calls),
                f"{self.calls_per_s:.2f}", f"{self.peak_rss_mb:.0f}",
                *(f"{cores:.2f}" for cores in self.cores)]


def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200,
                        help="store_image calls per throughput / peak RSS run (default 200)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed runs behind each median of (a), (b), (c) (default 7)")
    parser.add_argument("--image", type=Path,
                        help=f"source JPEG (default: {DEFAULT_PHOTO}, fetched from Debian "
                             f"into bench/.cache/corpus when missing)")
    return parser.parse_args()


def source_image(path):
    """The source file: ``path``, or the default photo (fetched when missing)."""
    if path is None:
        return corpus.photo(DEFAULT_PHOTO)
    if not path.is_file():
        raise SystemExit(f"store.py: {path}: no such file")
    return path


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
    config = configuration.load(str(write_config(workdir / "engine", io_threads=1)))
    status = magick.start(config.imagemagick)  # before anything imports Wand

    from imagepipe.imaging.wand_engine import WandEngine

    return WandEngine(config.image_limits, status.formats), status.version


def engine_variants():
    """The three variants as ``VariantSpec`` values, in the order of ``SIZES``."""
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


def Server(directory, io_threads, extra_env=None):
    """A ``twistd imagepipe`` on a free port with ``io_threads``, stopped on exit."""
    ini = ("[network]\ninterface = 127.0.0.1\nport = {port}\n"
           f"[images]\npath = images\nio_threads = {io_threads}\n")
    env = dict(CLEAN_ENV, PYTHONUNBUFFERED="1", **(extra_env or {}))
    return imagepipe(directory, ini, "imagepipe", env)


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


def cpu_seconds(server_processes):
    """CPU seconds used so far by the server, by this process and by the whole machine.

    The machine's figure counts every busy state, hypervisor steal included,
    so that what is left after the server and the client shows interference.
    """
    machine = psutil.cpu_times()
    return (sum(sum(p.cpu_times()[:2]) for p in server_processes),
            sum(psutil.Process().cpu_times()[:2]),
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            + machine.steal)


def drive(server, bodies, calls_each):
    """POST each body ``calls_each`` times from its own thread, all at once.

    Returns the wall seconds of the timed calls and the CPU seconds used
    meanwhile by the server, by this process and by anything else.
    """
    start = threading.Barrier(len(bodies) + 1)
    failures = []

    def send(body):
        try:
            post_stores(server.port, body, calls_each, start)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
            start.abort()

    server_process = psutil.Process(server.process.pid)
    server_processes = [server_process, *server_process.children(recursive=True)]
    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    before = cpu_seconds(server_processes)
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server_cpu, client_cpu, machine_cpu = (
        after - earlier for after, earlier in zip(cpu_seconds(server_processes), before))
    if failures:
        raise SystemExit(f"store.py: a store_image call failed: {failures[0]!r}")
    return wall, (server_cpu, client_cpu, machine_cpu - server_cpu - client_cpu)


def load_run(workdir, data, io_threads, clients, calls, extra_env=None):
    """Throughput and peak RSS of a server doing ``calls`` store_image calls.

    The client must not steal the server's CPU on this small machine, so each
    client thread marshals its XML-RPC request (base64 payload included) once,
    before timing, and then POSTs the same bytes with http.client on one
    kept-alive connection; the only per-call client work is the socket copy
    and parsing the tiny answer.  The CPU used by this process during the
    timed calls is reported beside the result to show that it stays small,
    and so is the CPU used by anything else on the machine.
    """
    calls_each = -(-calls // clients)
    payload = base64.b64encode(data).decode("ascii")
    bodies = [xmlrpc.client.dumps(store_arguments(payload, f"load/c{n}.jpg"),
                                  "store_image").encode("utf-8")
              for n in range(clients)]
    directory = workdir / f"load-{io_threads}t-{clients}c{'-env' if extra_env else ''}"
    with Server(directory, io_threads, extra_env) as server:
        sampler = PeakRss(server.process.pid)
        sampler.start()
        wall, cpu = drive(server, bodies, calls_each)
        peak = sampler.stop()
    return LoadResult(io_threads=io_threads,
                      env=" ".join(f"{k}={v}" for k, v in (extra_env or {}).items()),
                      clients=clients, calls=calls_each * clients,
                      calls_per_s=calls_each * clients / wall, peak_rss_mb=peak / 2**20,
                      cores=tuple(seconds / wall for seconds in cpu))


def dimensions(blobs):
    """The width x height of each encoded image, decoded with Pillow."""
    return tuple(Image.open(io.BytesIO(blob)).size for blob in blobs)


def variant_files(directory, stem):
    """The encoded bytes of the variants stored as ``directory/stem{suffix}.jpg``."""
    return [(directory / f"{stem}{suffix}.jpg").read_bytes() for suffix in SIZES]


def timing_row(name, seconds):
    """Median, min and max in ms, and the number of runs, as table cells."""
    return [name, f"{1000 * statistics.median(seconds):.0f}", f"{1000 * min(seconds):.0f}",
            f"{1000 * max(seconds):.0f}", str(len(seconds))]


def print_header(image, data, wand_version):
    """The machine, the ImageMagick versions and the task."""
    width, height = Image.open(image).size
    convert = convert_version()
    print("# imagepipe store benchmark\n")
    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, "
          f"Python {platform.python_version()}")
    print(f"ImageMagick: {convert} (convert and Wand)" if convert == wand_version else
          f"ImageMagick: {convert} (convert); {wand_version} (Wand)")
    print(f"image: {image.name}, {width}x{height}, {len(data)} bytes")
    print(f"task: size {json.dumps(SIZES)}, crop {json.dumps(CROPS)}, JPEG quality "
          f"{QUALITY}; MAGICK_THREAD_LIMIT=1 everywhere\n", flush=True)


def single_call_timings(workdir, image, data, engine, repeat):
    """Time (a), (b) and (c); print their table; return their seconds.

    Also checks with Pillow that the three ways made images of the same sizes.
    """
    outdir = workdir / "convert"
    outdir.mkdir()
    commands = convert_commands(image, outdir)
    convert_times = timed(lambda: run_convert(commands), repeat, warmup=1)
    variants = engine_variants()
    engine_times = timed(lambda: engine.render(data, variants, OPTIONS), repeat)
    with Server(workdir / "rpc", io_threads=1) as server:
        proxy = xmlrpc.client.ServerProxy(server.url)
        rpc_times = timed(lambda: rpc_store(proxy, data, "rpc/k.jpg"), repeat)
        stored = variant_files(server.images / "rpc", "k")

    sizes = {"(a)": dimensions(variant_files(outdir, "a")),
             "(b)": dimensions(engine.render(data, variants, OPTIONS)),
             "(c)": dimensions(stored)}
    shown = {way: ", ".join(f"{w}x{h}" for w, h in each) for way, each in sizes.items()}
    if len(set(shown.values())) == 1:
        print(f"outputs: {shown['(a)']} (the same in (a), (b) and (c))\n")
    else:
        print("outputs DIFFER: " + "; ".join(f"{way} {text}" for way, text in shown.items())
              + "\n")
    print(table(["measurement", "median ms", "min ms", "max ms", "runs"], [
        timing_row("(a) convert x 3, sequential", convert_times),
        timing_row("(b) WandEngine.render in-process", engine_times),
        timing_row("(c) store_image over XML-RPC, io_threads=1", rpc_times),
    ]) + "\n", flush=True)
    return convert_times, engine_times, rpc_times


def load_runs(workdir, data, calls):
    """Run (d) and (e); print their table; return the three ``LoadResult`` values."""
    runs = (load_run(workdir, data, 1, 2, calls),
            load_run(workdir, data, 2, 4, calls),
            load_run(workdir, data, 2, 4, calls, {"MALLOC_ARENA_MAX": "2"}))
    print(table(["server", "clients", "calls", "calls/s", "peak RSS MB",
                 "server CPU", "client CPU", "other CPU"], [run.row() for run in runs]))
    other = max(run.cores[2] for run in runs)
    if other > OTHER_CPU_TOLERATED:
        print(f"\nWARNING: other processes used up to {other:.2f} CPU during these runs: "
              f"calls/s are understated; rerun on an idle machine.")
    print(flush=True)
    return runs


def main():
    """Measure (a) to (e) and print the tables, then the targets."""
    args = parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-") as temp:
        workdir = Path(temp)
        image = source_image(args.image)
        data = image.read_bytes()
        engine, wand_version = start_engine(workdir)
        print_header(image, data, wand_version)
        convert_times, engine_times, rpc_times = single_call_timings(
            workdir, image, data, engine, args.repeat)
        one, two, arena = load_runs(workdir, data, args.calls)

    engine_median = statistics.median(engine_times)
    targets = [
        Target("(a)/(b) engine vs convert", statistics.median(convert_times) / engine_median,
               9, at_most=False, unit="x"),
        Target("(c)/(b) XML-RPC vs engine", statistics.median(rpc_times) / engine_median,
               1.2, at_most=True, unit="x"),
        Target("(d) calls/s, 2 threads / 1 thread", two.calls_per_s / one.calls_per_s,
               1.8, at_most=False, unit="x"),
        Target("(e) peak RSS, io_threads=2, MALLOC_ARENA_MAX=2", arena.peak_rss_mb,
               250, at_most=True, unit=" MB"),
    ]
    print(table(["target", "measured", "goal", "result"], [t.row() for t in targets]))
    print(f"\n(e) without MALLOC_ARENA_MAX: {two.peak_rss_mb:.0f} MB. "
          f"Whole run: {time.perf_counter() - began:.0f} s.")


if __name__ == "__main__":
    main()
