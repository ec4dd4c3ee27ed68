"""Small helpers every benchmark script shares: tables and the machine header."""

import math
import platform
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


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
