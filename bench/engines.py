"""The engines side by side: Wand, Pillow and sharp on one task, speed and quality.

Every measurement does the same task: a corpus JPEG becomes a 1024x1024 fit,
a 250x250 fit and a 50x50 centre crop (cover, then crop), JPEG quality 85,
4:2:0.  For each image (by default the 6028x3391 baseline
``Kleiber_by_Lukas_Baubkus.jpg`` and the progressive
``seeding_by_Clements_Engelhardt.jpg``, fetched from Debian by ``corpus.py``) one run
measures, one thread and then two threads (two workers each doing whole
tasks), in ``--rounds`` blocks with the engines taking turns:

- ``WandEngine.render`` (ImageMagick, MAGICK_THREAD_LIMIT=1, the default);
- ``PillowEngine.render``, when ``imagepipe/imaging/pillow_engine.py`` exists;
- sharp (libvips) from Node.js, installed with npm into a cache directory:
  shrink-on-load, then the cascade 1024 -> 250 -> 50x50 cover, mozjpeg off,
  one libvips thread per task (``sharp.concurrency(1)``, its cache off);
- the decode-only floors: Pillow ``draft`` to 1/4 and to 1/8 scale, then load.

Quality is measured: the SSIM (luminance, Gaussian window 11, sigma 1.5) of
every output against a reference made from a full-resolution Pillow decode
resized in floating point (Lanczos, mode ``F``) to the sizes and crops of
``imagepipe.imaging.geometry.plan``.  Luminance is a linear mix of R, G and
B and the resize is linear, so resizing the luminance plane is the same as
resizing each channel and mixing afterwards.  A crop that sits a pixel or two
away from the plan's (sharp rounds the centre the other way) scores far
lower against the plan's crop whatever its quality, so crops are also scored
at the best offset within 2 px, and the quality target uses that figure.

Then each imagepipe engine does ``--rss-tasks`` tasks with two threads in a
child process, with MALLOC_ARENA_MAX=2 and without, and reports its RSS at
the end.  The run ends with the project's targets, each PASS or MISS.

    python bench/engines.py [--tasks 40] [--rounds 4] [--rss-tasks 200] [--image PATH ...]
                            [--sharp-dir DIR]

Needs numpy besides the test extras (Pillow, psutil), and node + npm for
sharp (the npm package ``sharp``; skipped with a message when unavailable).
About 2 minutes on a 2-CPU machine; the throughput figures need an
otherwise idle machine: the "other CPU" columns show how much something else
used meanwhile.
"""

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy
import psutil
import PIL
from PIL import Image, ImageOps, features

from imagepipe import config as configuration
from imagepipe.imaging import EncodeOptions, VariantSpec, geometry, magick
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.geometry import Mode

import corpus
from common import Target, cpu_model, table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = ("Kleiber_by_Lukas_Baubkus.jpg", "seeding_by_Clements_Engelhardt.jpg")
DEFAULT_SHARP_DIR = corpus.CACHE / "sharp"

QUALITY = 85
JPEG = by_name("jpg")
VARIANTS = (VariantSpec((1024, 1024), Mode.FIT, JPEG),
            VariantSpec((250, 250), Mode.FIT, JPEG),
            VariantSpec((50, 50), Mode.CROP, JPEG))
VARIANT_NAMES = ("1024 fit", "250 fit", "50x50 crop")
OPTIONS = EncodeOptions(quality=QUALITY)
WARMUP = 2
OTHER_CPU_TOLERATED = 0.1  # cores used by other processes before a figure is in doubt
SSIM_TOLERANCE = 0.005  # the Pillow engine may be this much below sharp

# Children get this environment without the MAGICK_* variables that
# magick.start() sets here and without MALLOC_ARENA_MAX, set explicitly.
CLEAN_ENV = {name: value for name, value in os.environ.items()
             if not name.startswith("MAGICK_") and name != "MALLOC_ARENA_MAX"}

# The sharp side of the task, written to the sharp directory as task.js:
# node task.js IMAGE TASKS WORKERS OUTDIR prints one JSON line.
SHARP_TASK = r"""'use strict';
// imagepipe bench/engines.py: the task with sharp, timed here.
// node task.js IMAGE TASKS WORKERS OUTDIR ('' = write no outputs)
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const [image, tasksText, workersText, outdir] = process.argv.slice(2);
const tasks = Number(tasksText);
const workers = Number(workersText);
sharp.concurrency(1);  // one libvips thread per task, like one imagepipe worker
sharp.cache(false);    // the same input every time: nothing may come from a cache
const input = fs.readFileSync(image);
const JPEG = {quality: %(quality)d, chromaSubsampling: '4:2:0', mozjpeg: false};

function fromRaw({data, info}) {
  return sharp(data, {raw: {width: info.width, height: info.height, channels: info.channels}});
}

function fit(source, size) {
  return source.resize(size, size, {fit: 'inside', withoutEnlargement: true})
    .raw().toBuffer({resolveWithObject: true});
}

async function task() {
  // The first resize shrinks on load; then each size is made from the last one.
  const large = await fit(sharp(input).rotate(), 1024);
  const largeJpeg = await fromRaw(large).jpeg(JPEG).toBuffer();
  const medium = await fit(fromRaw(large), 250);
  const mediumJpeg = await fromRaw(medium).jpeg(JPEG).toBuffer();
  const small = await fromRaw(medium).resize(50, 50, {fit: 'cover', position: 'centre'})
    .jpeg(JPEG).toBuffer();
  return [largeJpeg, mediumJpeg, small];
}

function machineBusy() {
  // Busy CPU seconds of the whole machine, counted as psutil counts them.
  const [, user, nice, system, , , irq, softirq, steal] =
    fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

function ownCpu() {
  const {user, system} = process.cpuUsage();
  return (user + system) / 1e6;
}

async function main() {
  const first = await task();
  if (outdir) {
    first.forEach((blob, i) => fs.writeFileSync(path.join(outdir, `sharp-${i}.jpg`), blob));
  }
  await task();
  const times = [];
  let started = 0;
  async function worker() {
    while (started < tasks) {
      started += 1;
      const begin = process.hrtime.bigint();
      await task();
      times.push(Number(process.hrtime.bigint() - begin) / 1e9);
    }
  }
  const machine = machineBusy();
  const cpu = ownCpu();
  const begin = process.hrtime.bigint();
  await Promise.all(Array.from({length: workers}, worker));
  const wall = Number(process.hrtime.bigint() - begin) / 1e9;
  console.log(JSON.stringify({times, wall, cpu: ownCpu() - cpu,
                              machine: machineBusy() - machine}));
}

main().catch((error) => { console.error(error); process.exit(1); });
""" % {"quality": QUALITY}


@dataclass(frozen=True)
class Run:
    """One timed batch of tasks: per-task seconds, wall seconds, CPU in cores."""

    times: tuple
    wall: float
    cores: float  # CPU seconds per wall second of the measured code
    other: float  # the same for everything else on the machine

    @property
    def median_ms(self):
        """The median task time in milliseconds."""
        return 1000 * statistics.median(self.times)

    @property
    def per_second(self):
        """Tasks per second over the batch."""
        return len(self.times) / self.wall


def merged(runs):
    """One ``Run`` made of several blocks of the same kind."""
    wall = sum(run.wall for run in runs)
    return Run(tuple(t for run in runs for t in run.times), wall,
               sum(run.cores * run.wall for run in runs) / wall,
               sum(run.other * run.wall for run in runs) / wall)


@dataclass(frozen=True)
class EngineResult:
    """What one engine did with one image: two runs and the SSIM of each variant."""

    name: str
    one: Run
    two: Run
    ssim: tuple | None  # a Score per variant; None for the decode floors

    def row(self):
        """The result as table cells."""
        if self.ssim is None:
            quality = ["-"] * (len(VARIANTS) + 1)
        else:
            quality = [s.cell() for s in self.ssim]
            quality.append(f"{mean_ssim([s.at_plan for s in self.ssim]):.4f}"
                           if self.sized else "-")
        return [self.name, f"{self.one.median_ms:.1f}", f"{self.one.per_second:.2f}",
                f"{self.two.per_second:.2f}", f"{self.two.per_second / self.one.per_second:.2f}",
                f"{self.one.cores:.2f} / {self.two.cores:.2f}",
                f"{self.one.other:.2f} / {self.two.other:.2f}", *quality]

    @property
    def sized(self):
        """True when every output has the size of its plan."""
        return self.ssim is not None and all(s.at_plan is not None for s in self.ssim)

    def shifted(self):
        """Notes on the crops that match best away from the plan's offset."""
        return [f"{self.name}, {name}: best at offset {s.shift[0]:+d},{s.shift[1]:+d} px "
                f"from geometry.plan's crop, SSIM {s.best:.4f} there"
                for name, s in zip(VARIANT_NAMES, self.ssim or ()) if s.shift != (0, 0)]


@dataclass(frozen=True)
class Score:
    """The SSIM of one output: at the plan's crop, and at the best crop nearby."""

    at_plan: float | None  # None: the output does not have the plan's size
    best: float | None
    shift: tuple  # (dx, dy) of the best crop from the plan's; (0, 0) for a fit

    def cell(self):
        """The SSIM at the plan as a table cell; * when a shifted crop matches better."""
        if self.at_plan is None:
            return "size!"
        return f"{self.at_plan:.4f}" + ("*" if self.shift != (0, 0) else "")


@dataclass(frozen=True)
class RssResult:
    """One child process doing ``--rss-tasks`` tasks with two threads."""

    engine: str
    arena: str
    run: Run
    rss_mb: float
    peak_mb: float

    def row(self):
        """The result as table cells."""
        return [self.engine, self.arena or "unset", str(len(self.run.times)),
                f"{self.run.per_second:.2f}", f"{self.rss_mb:.0f}", f"{self.peak_mb:.0f}",
                f"{self.run.other:.2f}"]


def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40,
                        help="timed tasks per engine, image and thread count (default 40)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="blocks the tasks are split into, the engines taking turns "
                             "(default 4)")
    parser.add_argument("--rss-tasks", type=int, default=200,
                        help="tasks before the RSS of each engine's child process is read "
                             "(default 200)")
    parser.add_argument("--image", type=Path, action="append",
                        help="source JPEG, repeatable; the first one is the targets' "
                             "(default: Kleiber_by_Lukas_Baubkus.jpg and "
                             "seeding_by_Clements_Engelhardt.jpg, fetched from Debian)")
    parser.add_argument("--sharp-dir", type=Path, default=DEFAULT_SHARP_DIR,
                        help=f"where npm installs sharp, kept between runs "
                             f"(default {DEFAULT_SHARP_DIR})")
    parser.add_argument("--rss-child", choices=("wand", "pillow"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.image = tuple(image.resolve() for image in args.image
                       or [corpus.photo(name) for name in DEFAULT_PHOTOS])
    for image in args.image:
        if not image.is_file():
            raise SystemExit(f"engines.py: {image}: no such file")
    return args


def build_engines(workdir):
    """Configure ImageMagick as the server does; build the engines.

    Returns a dict name -> engine (no "pillow" when its module is missing or
    fails), the ImageMagick version, and why the Pillow engine is missing.
    """
    images = workdir / "images"
    images.mkdir()
    ini = workdir / "imagepipe.ini"
    ini.write_text("[network]\ninterface = 127.0.0.1\nport = 0\n[images]\npath = images\n")
    config = configuration.load(str(ini))
    status = magick.start(config.imagemagick)  # before anything imports Wand

    from imagepipe.imaging.wand_engine import WandEngine

    engines = {"wand": WandEngine(config.image_limits, status.formats)}
    missing = None
    try:
        from imagepipe.imaging.pillow_engine import PillowEngine, available_formats

        engines["pillow"] = PillowEngine(config.image_limits, available_formats())
    except ModuleNotFoundError as error:
        if error.name != "imagepipe.imaging.pillow_engine":
            raise
        missing = "imagepipe/imaging/pillow_engine.py does not exist"
    except Exception as error:  # noqa: BLE001 - a half-written engine is reported, not fatal
        missing = f"it cannot be built: {type(error).__name__}: {error}"
    return engines, status.version, missing


def cpu_seconds():
    """CPU seconds used so far by this process and by the whole machine.

    The machine's figure counts every busy state, hypervisor steal included,
    so that what is left after this process shows interference.
    """
    machine = psutil.cpu_times()
    return (sum(psutil.Process().cpu_times()[:2]),
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            + machine.steal)


def measure(task, tasks, threads, warmup=WARMUP):
    """Run ``task`` ``tasks`` times on ``threads`` threads, each doing whole tasks.

    ``warmup`` untimed calls come first.  Returns a ``Run``.
    """
    for _ in range(warmup):
        task()
    times = []
    failures = []
    start = threading.Barrier(threads + 1)

    def work(count):
        try:
            start.wait()
            for _ in range(count):
                began = time.perf_counter()
                task()
                times.append(time.perf_counter() - began)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    workers = [threading.Thread(target=work, args=(tasks // threads,))
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    own, machine = cpu_seconds()
    began = time.perf_counter()
    start.wait()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    own_after, machine_after = cpu_seconds()
    if failures:
        raise SystemExit(f"engines.py: a task failed: {failures[0]!r}")
    used = own_after - own
    return Run(tuple(times), wall, used / wall, (machine_after - machine - used) / wall)


def render_task(engine, data):
    """The task through an imagepipe engine, as a function of no arguments."""
    return lambda: engine.render(data, VARIANTS, OPTIONS)


def floor_task(data, scale):
    """Decoding only, with Pillow's ``draft`` to 1/``scale`` of the size."""
    def decode():
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (width // scale, height // scale))
            image.load()
    return decode


def plans(size):
    """The geometry plan of each variant for a source of ``size`` (as stored)."""
    return [geometry.plan(size, v.box, v.mode) for v in VARIANTS]


def references(image):
    """The reference of each variant: a luminance plane and the plan's crop box.

    Full-resolution decode, EXIF orientation, luminance in floating point,
    Lanczos resize in mode F to each plan's size, as a float array; the
    crop (a ``geometry.Box`` or None) is left to ``score``.
    """
    with Image.open(image) as source:
        upright = ImageOps.exif_transpose(source).convert("RGB")
    luma = upright.convert("F")  # ITU-R 601 weights, no rounding
    del upright
    planes = []
    for plan in plans(luma.size):
        resized = luma.resize(plan.resize, Image.LANCZOS)
        planes.append((numpy.asarray(resized, dtype=numpy.float64), plan.crop))
    return planes


def gaussian_filter(plane, window):
    """Separable Gaussian filter over the positions where the window fits whole."""
    size = len(window)
    rows = sum(w * plane[i:plane.shape[0] - size + 1 + i, :] for i, w in enumerate(window))
    return sum(w * rows[:, i:rows.shape[1] - size + 1 + i] for i, w in enumerate(window))


def ssim(x, y, size=11, sigma=1.5, peak=255.0):
    """Mean SSIM of two luminance planes (Wang et al. 2004, Gaussian window)."""
    offsets = numpy.arange(size) - size // 2
    window = numpy.exp(-offsets ** 2 / (2 * sigma ** 2))
    window /= window.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = gaussian_filter(x, window), gaussian_filter(y, window)
    sxx = gaussian_filter(x * x, window) - mx * mx
    syy = gaussian_filter(y * y, window) - my * my
    sxy = gaussian_filter(x * y, window) - mx * my
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(index.mean())


def score(blobs, reference_planes, reach=2):
    """The ``Score`` of each encoded output against its reference.

    A crop is also compared with the reference cropped up to ``reach``
    pixels away from the plan's box in each direction.
    """
    scores = []
    for blob, (reference, box) in zip(blobs, reference_planes):
        with Image.open(io.BytesIO(blob)) as output:
            plane = numpy.asarray(output.convert("RGB").convert("F"), dtype=numpy.float64)
        if box is None:
            at_plan = ssim(plane, reference) if plane.shape == reference.shape else None
            scores.append(Score(at_plan, at_plan, (0, 0)))
            continue
        if plane.shape != (box.height, box.width):
            scores.append(Score(None, None, (0, 0)))
            continue
        nearby = {}
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                top, left = box.top + dy, box.left + dx
                if (0 <= top and top + box.height <= reference.shape[0]
                        and 0 <= left and left + box.width <= reference.shape[1]):
                    cut = reference[top:top + box.height, left:left + box.width]
                    nearby[dx, dy] = ssim(plane, cut)
        shift = max(nearby, key=nearby.get)
        if nearby[shift] <= nearby[0, 0]:
            shift = (0, 0)
        scores.append(Score(nearby[0, 0], nearby[shift], shift))
    return tuple(scores)


def mean_ssim(scores):
    """The mean SSIM over the variants."""
    return sum(scores) / len(scores)


def node_tools():
    """Paths of node and npm, or None when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def prepare_sharp(directory):
    """Install sharp into ``directory`` unless it loads already; write task.js.

    Returns (node path, sharp's version dict), or (None, why not).
    """
    tools = node_tools()
    if tools is None:
        return None, "node or npm is not on PATH"
    node, npm = tools
    directory.mkdir(parents=True, exist_ok=True)
    package = directory / "package.json"
    if not package.exists():
        package.write_text('{"name": "imagepipe-bench-sharp", "private": true}\n')
    probe = [node, "-e", "process.stdout.write(JSON.stringify(require('sharp').versions))"]
    loaded = subprocess.run(probe, cwd=directory, capture_output=True, text=True)
    if loaded.returncode:
        print(f"installing sharp with npm into {directory} ...", flush=True)
        try:
            installed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "sharp"],
                                       cwd=directory, capture_output=True, text=True,
                                       timeout=600)
        except subprocess.TimeoutExpired:
            return None, "npm install sharp took more than 10 minutes"
        if installed.returncode:
            return None, f"npm install sharp failed: {last_lines(installed.stderr)}"
        loaded = subprocess.run(probe, cwd=directory, capture_output=True, text=True)
        if loaded.returncode:
            return None, f"sharp does not load after npm install: {last_lines(loaded.stderr)}"
    (directory / "task.js").write_text(SHARP_TASK)
    return node, json.loads(loaded.stdout)


def last_lines(text, count=3):
    """The last ``count`` non-empty lines of ``text``, on one line."""
    return " / ".join([line for line in text.splitlines() if line.strip()][-count:])


def sharp_run(node, directory, image, tasks, workers, outdir=""):
    """Time the task in Node with sharp; a ``Run``."""
    env = dict(CLEAN_ENV, UV_THREADPOOL_SIZE=str(max(4, 2 * workers)))
    done = subprocess.run([node, "task.js", str(image), str(tasks), str(workers), str(outdir)],
                          cwd=directory, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"engines.py: the sharp task failed:\n{done.stderr.strip()}")
    result = json.loads(done.stdout)
    wall = result["wall"]
    return Run(tuple(result["times"]), wall, result["cpu"] / wall,
               (result["machine"] - result["cpu"]) / wall)


def timed_in_process(task):
    """A timer for ``measure_image``: ``task`` run here, warmed up in its first block."""
    return lambda threads, count, first: measure(task, count, threads,
                                                 warmup=WARMUP if first else 0)


def timed_sharp(node, directory, image, outdir):
    """A timer for ``measure_image``: sharp in Node, writing its outputs in the first block."""
    return lambda threads, count, first: sharp_run(node, directory, image, count, threads,
                                                   outdir if first else "")


def measure_image(image, engines, sharp, tasks, rounds, workdir):
    """Every engine and floor on one image; print its table; return results by name.

    The tasks are run in ``rounds`` blocks per engine and thread count, the
    engines taking turns, so that a burst of other work on the machine
    hits them all alike.
    """
    data = image.read_bytes()
    timers = {name: timed_in_process(render_task(engine, data))
              for name, engine in engines.items()}
    outdir = workdir / f"sharp-{image.stem}"
    if sharp:
        outdir.mkdir()
        timers["sharp"] = timed_sharp(*sharp, image, outdir)
    for scale in (4, 8):
        timers[f"floor{scale}"] = timed_in_process(floor_task(data, scale))
    blocks = {(name, threads): [] for name in timers for threads in (1, 2)}
    for index in range(rounds):
        for name, timer in timers.items():
            for threads in (1, 2):
                blocks[name, threads].append(
                    timer(threads, max(threads, tasks // rounds), index == 0 and threads == 1))

    reference_planes = references(image)
    results = {}
    for name in timers:
        one, two = merged(blocks[name, 1]), merged(blocks[name, 2])
        if name in engines:
            blobs = render_task(engines[name], data)()
            results[name] = EngineResult(f"{name} engine", one, two,
                                         score(blobs, reference_planes))
        elif name == "sharp":
            blobs = [(outdir / f"sharp-{i}.jpg").read_bytes() for i in range(len(VARIANTS))]
            results[name] = EngineResult("sharp", one, two, score(blobs, reference_planes))
        else:
            results[name] = EngineResult(f"decode floor 1/{name[5:]}", one, two, None)
    print(f"## {image.name}\n")
    print(table(["engine", "median ms", "tasks/s 1T", "tasks/s 2T", "2T/1T",
                 "CPU 1T / 2T", "other CPU 1T / 2T",
                 *(f"SSIM {name}" for name in VARIANT_NAMES), "SSIM mean"],
                [result.row() for result in results.values()]))
    for result in results.values():
        for note in result.shifted():
            print(f"\n* {note}")
    other = max(max(r.one.other, r.two.other) for r in results.values())
    if other > OTHER_CPU_TOLERATED:
        print(f"\nWARNING: other processes used up to {other:.2f} CPU during these runs: "
              f"tasks/s are understated; rerun on an idle machine.")
    print(flush=True)
    return results


def rss_child(engine_name, image, tasks):
    """In a child process: ``tasks`` tasks with two threads, then print RSS as JSON."""
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-") as temp:
        engines, _, missing = build_engines(Path(temp))
        if engine_name not in engines:
            raise SystemExit(f"engines.py: no {engine_name} engine: {missing}")
        run = measure(render_task(engines[engine_name], image.read_bytes()), tasks, 2,
                      warmup=0)
    print(json.dumps({"times": run.times, "wall": run.wall, "cores": run.cores,
                      "other": run.other, "rss": psutil.Process().memory_info().rss,
                      "peak": peak_rss()}))


def peak_rss():
    """This process's peak RSS in bytes (VmHWM).

    Not ``getrusage``: its ``ru_maxrss`` survives ``exec`` and so starts at
    the size of the parent that spawned us.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_rss(engine_name, image, tasks, arena):
    """Start the RSS child for ``engine_name``; its ``RssResult``."""
    env = dict(CLEAN_ENV, **({"MALLOC_ARENA_MAX": arena} if arena else {}))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()),
                           "--rss-child", engine_name, "--rss-tasks", str(tasks),
                           "--image", str(image)],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"engines.py: the {engine_name} RSS child failed:\n"
                         f"{done.stderr.strip()}")
    result = json.loads(done.stdout.splitlines()[-1])
    run = Run(tuple(result["times"]), result["wall"], result["cores"], result["other"])
    return RssResult(engine_name, f"MALLOC_ARENA_MAX={arena}" if arena else "", run,
                     result["rss"] / 2**20, result["peak"] / 2**20)


def rss_runs(engine_names, image, tasks):
    """The RSS children, with MALLOC_ARENA_MAX=2 and without; print their table."""
    results = [measure_rss(name, image, tasks, arena)
               for arena in ("2", None) for name in engine_names]
    print(f"## RSS after {tasks} tasks, two threads, {image.name}\n")
    print(table(["engine", "MALLOC_ARENA_MAX", "tasks", "tasks/s", "RSS at end MB",
                 "peak RSS MB", "other CPU"], [result.row() for result in results]))
    print(flush=True)
    return results


def describe(image):
    """Size, bytes and scan type of a JPEG, for the header."""
    with Image.open(image) as source:
        width, height = source.size
        scan = "progressive" if source.info.get("progressive") else "baseline"
    return f"{image.name}: {width}x{height}, {image.stat().st_size} bytes, {scan}"


def print_header(images, wand_version, sharp_versions, pillow_missing, sharp_missing):
    """The machine, the libraries, the images and the task."""
    print("# imagepipe engine benchmark\n")
    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, "
          f"Python {platform.python_version()}")
    print(f"Wand: {wand_version}, MAGICK_THREAD_LIMIT=1")
    print(f"Pillow: {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}"
          + (f"; Pillow engine SKIPPED: {pillow_missing}" if pillow_missing else ""))
    if sharp_versions:
        print(f"sharp: {sharp_versions.get('sharp')}, libvips {sharp_versions.get('vips')}, "
              f"Node.js {platform_node()}; concurrency(1), cache off, mozjpeg off")
    else:
        print(f"sharp: SKIPPED: {sharp_missing}")
    for image in images:
        print(f"image: {describe(image)}")
    print(f"task: 1024x1024 fit, 250x250 fit, 50x50 centre crop, JPEG quality {QUALITY}, "
          f"4:2:0\n")
    print("1T: one thread; 2T: two threads, each doing whole tasks; CPU in cores. SSIM: "
          "luminance, against a float Lanczos resize of a full decode.\n", flush=True)


def platform_node():
    """The Node.js version."""
    tools = node_tools()
    if tools is None:
        return "?"
    return subprocess.run([tools[0], "--version"], capture_output=True,
                          text=True).stdout.strip()


def targets(results, rss, tasks):
    """The project's targets from the first image's results and the RSS runs."""
    pillow, sharp, wand = results.get("pillow"), results.get("sharp"), results["wand"]
    floor = results["floor4"]

    def ratio(result, threads):
        if result is None or sharp is None:
            return None
        return (getattr(result, threads).per_second / getattr(sharp, threads).per_second)

    ssim_margin = None
    if pillow and sharp and pillow.sized and sharp.sized:
        ssim_margin = min(p.best - s.best for p, s in zip(pillow.ssim, sharp.ssim))
    after = {r.engine: r.rss_mb for r in rss if r.arena}
    return [
        Target("pillow / sharp tasks/s, 1 thread", ratio(pillow, "one"), 1.0,
               at_most=False, unit="x", fmt=".2f"),
        Target("pillow / sharp tasks/s, 2 threads", ratio(pillow, "two"), 1.0,
               at_most=False, unit="x", fmt=".2f"),
        Target("pillow SSIM - sharp SSIM, worst variant, best crop offset", ssim_margin,
               -SSIM_TOLERANCE, at_most=False, unit="", fmt="+.4f"),
        Target("wand / sharp tasks/s, 1 thread", ratio(wand, "one"), 0.45,
               at_most=False, unit="x", fmt=".2f"),
        Target("wand / sharp tasks/s, 2 threads", ratio(wand, "two"), 0.45,
               at_most=False, unit="x", fmt=".2f"),
        Target("pillow median / 1/4-scale decode floor median",
               pillow.one.median_ms / floor.one.median_ms if pillow else None, 1.4,
               at_most=True, unit="x", fmt=".2f"),
        Target(f"wand RSS after {tasks} tasks, MALLOC_ARENA_MAX=2", after.get("wand"), 150,
               at_most=True, unit=" MB", fmt=".0f"),
        Target(f"pillow RSS after {tasks} tasks, MALLOC_ARENA_MAX=2", after.get("pillow"), 150,
               at_most=True, unit=" MB", fmt=".0f"),
    ]


def main():
    """Measure every engine on every image, the RSS, and print the targets."""
    args = parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.image[0], args.rss_tasks)
        return
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-") as temp:
        workdir = Path(temp)
        engines, wand_version, pillow_missing = build_engines(workdir)
        node, sharp_info = prepare_sharp(args.sharp_dir)
        sharp = (node, args.sharp_dir) if node else None
        print_header(args.image, wand_version, sharp_info if node else None, pillow_missing,
                     None if node else sharp_info)
        per_image = [measure_image(image, engines, sharp, args.tasks, args.rounds, workdir)
                     for image in args.image]
    rss = rss_runs(list(engines), args.image[0], args.rss_tasks)
    print(f"## Targets ({args.image[0].name})\n")
    print(table(["target", "measured", "goal", "result"],
                [t.row() for t in targets(per_image[0], rss, args.rss_tasks)]))
    other = max(max(r.one.other, r.two.other) for r in per_image[0].values())
    if other > OTHER_CPU_TOLERATED:
        print(f"\nThe throughput targets are in doubt: other processes used up to "
              f"{other:.2f} CPU during the {args.image[0].name} runs.")
    print(f"\nWhole run: {time.perf_counter() - began:.0f} s.")


if __name__ == "__main__":
    main()
