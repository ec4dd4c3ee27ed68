"""What the benchmark scripts share: tables, the machine header, Debian tools, and
server processes (``Server``, ``imagepipe``) started and stopped around a run.

Free ports, the wait for a port and nginx's layout are the tests' own
(``tests/support/net.py`` and ``nginx.py``, standard library only), taken from
there rather than written twice."""

import math
import os
import platform
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/support, before any installed "support"

from support import net, nginx  # noqa: E402 - found through the line above
from support.net import free_pair, free_port  # noqa: E402

__all__ = ("SERVER_ENV", "TWISTD", "Server", "Target", "apt_install", "convert_version",
           "cpu_model", "free_pair", "free_port", "imagepipe", "last_lines", "nginx",
           "percentile", "table", "tool", "wait_listening")

TWISTD = Path(sys.executable).with_name("twistd")

# Servers start without the caller's ImageMagick settings, with few malloc arenas.
SERVER_ENV = dict({name: value for name, value in os.environ.items()
                   if not name.startswith("MAGICK_") and name != "MALLOC_ARENA_MAX"},
                  MALLOC_ARENA_MAX="2")


def table(headers, rows):
    """A markdown table; columns after the first are right-aligned."""
    lines = ["| " + " | ".join(headers) + " |",
             "|---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model():
    """The CPU model name from /proc/cpuinfo, or the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def convert_version():
    """The first line of ``convert -version``."""
    try:
        out = subprocess.run(["convert", "-version"], capture_output=True, text=True)
    except OSError as error:
        return f"convert not found ({error})"
    return out.stdout.splitlines()[0].removeprefix("Version: ") if out.stdout else "unknown"


@dataclass(frozen=True)
class Target:
    """A figure the project aims for: ``value`` compared with ``goal``.

    A ``value`` of None (not measured) gives SKIP; infinity reads "not reached".
    """

    name: str
    value: float | None
    goal: float
    at_most: bool  # True: value <= goal passes; False: value >= goal passes
    unit: str
    fmt: str = ".3g"  # format of the value

    def row(self):
        """Name, value, goal and PASS/MISS/SKIP as table cells."""
        goal = f"{'<=' if self.at_most else '>='} {self.goal:g}{self.unit}"
        if self.value is None:
            return [self.name, "-", goal, "SKIP"]
        met = self.value <= self.goal if self.at_most else self.value >= self.goal
        shown = format(self.value, self.fmt)
        if not met and float(shown) == self.goal:
            shown = format(self.value, ".6g")  # a MISS must not read as the goal
        if math.isinf(self.value):
            shown = "not reached"
        return [self.name, f"{shown}{self.unit}" if shown != "not reached" else shown, goal,
                "PASS" if met else "MISS"]


def last_lines(text, count=3):
    """The last ``count`` non-empty lines of ``text``, on one line."""
    return " / ".join([line for line in text.splitlines() if line.strip()][-count:])


def apt_install(packages):
    """Install Debian packages with apt-get (the package lists refreshed first)."""
    print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                           *packages], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"apt-get install {' '.join(packages)} failed: "
                         f"{last_lines(done.stderr)}")


def tool(path_or_name, package):
    """The path of a program, its Debian ``package`` installed first when missing."""
    found = shutil.which(path_or_name)
    if not found:
        apt_install([package])
        found = shutil.which(path_or_name)
    if not found:
        raise SystemExit(f"{path_or_name} is missing after installing {package}")
    return found


class Server:
    """A server process in its own session, stopped with its whole group on exit.

    ``port`` is where it listens; starting waits until it accepts connections.
    """

    def __init__(self, name, command, port, directory, env=SERVER_ENV):
        self.name = name
        self.command = command
        self.port = port
        self.directory = directory
        self.env = env
        self.process = None

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "output.log", "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.directory, env=self.env,
                                            start_new_session=True)
        try:
            wait_listening(self.process, self.port, self.log, name=self.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info):
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _signal(self, number):
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass

    @property
    def url(self):
        """The server's root URL (XML-RPC for imagepipe)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def images(self):
        """An imagepipe server's image root (``imagepipe`` puts it there)."""
        return self.directory / "images"

    def log(self):
        """What the server wrote on stdout and stderr."""
        return (self.directory / "output.log").read_text(errors="replace")

    def processes(self):
        """The server's processes (forked workers included) as psutil objects."""
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def rss(self):
        """The resident memory of all the server's processes, in bytes."""
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total


def wait_listening(process, port, log, timeout=60.0, name="the server"):
    """Wait until ``port`` accepts connections; exit showing ``log()`` if ``process`` ends first.

    The tests' wait, failing with a message and an exit rather than an assertion.
    """
    try:
        net.wait_listening(process, port, log, timeout, name)
    except AssertionError as failure:
        raise SystemExit(str(failure)) from None


def imagepipe(directory, ini, name="imagepipe", env=SERVER_ENV):
    """A ``Server`` running ``twistd imagepipe`` in ``directory`` on a free port.

    ``ini`` is the text of its ``imagepipe.ini`` with ``{port}`` where the
    port goes; images live in ``directory/images`` (``path = images``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "images").mkdir(exist_ok=True)
    port = free_port()
    config = directory / "imagepipe.ini"
    config.write_text(ini.format(port=port))
    command = [str(TWISTD), "-n", "--pidfile=", "imagepipe", "-c", str(config)]
    return Server(name, command, port, directory, env)


def percentile(values, fraction):
    """The value below which ``fraction`` of ``values`` lie (nearest rank); inf when empty."""
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
