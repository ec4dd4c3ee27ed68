"""Small helpers every benchmark script shares: tables and the machine header."""

import platform
import socket
import subprocess
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
