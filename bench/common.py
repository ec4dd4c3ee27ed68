"""What the benchmark scripts share: tables, the machine header, Debian tools, and
server processes (``Server``, ``imagepipe``) started and stopped around a run."""

import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

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


def free_port():
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_pair():
    """A port P with P + 1 also free (publish and the sync endpoint beside it)."""
    while True:
        port = random.randint(20000, 60000)
        sockets = []
        try:
            for candidate in (port, port + 1):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


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
            self._wait_listening()
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

    def _wait_listening(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.process.returncode}):"
                                 f"\n{self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise SystemExit(f"{self.name} did not listen on port {self.port}")

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
