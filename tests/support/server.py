"""A real imagepipe under test: ``twistd -n imagepipe`` as a child process on a free port.

``Server`` writes a config file from its ``sections``, starts the process and
waits for its port to accept connections (an event, not a sleep).
"""

import base64
import os
import signal
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

from support.net import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]
TWISTD = str(Path(sys.executable).with_name("twistd"))


def render_config(sections):
    """The text of an ini file from {section: {key: value}}; a dict value is a subsection."""
    lines = []

    def section(name, values, depth):
        lines.append("[" * depth + name + "]" * depth)
        for key, value in values.items():  # keys first: configobj needs them before subsections
            if not isinstance(value, dict):
                lines.append(f"{key} = {value}")
        for key, value in values.items():
            if isinstance(value, dict):
                section(key, value, depth + 1)

    for name, values in sections.items():
        section(name, values, 1)
    return "\n".join(lines) + "\n"


def b64(data):
    """Base64 text, as the original clients sent it."""
    return base64.b64encode(data).decode("ascii")


class Server:
    """One imagepipe process under test."""

    def __init__(self, base, twistd=TWISTD, **overrides):
        self.base = Path(base)
        self.twistd = twistd
        self.root = self.base / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = self.base / "imagepipe.ini"
        self.logfile = self.base / "twistd.log"
        self.sections = {
            "network": {"interface": "127.0.0.1", "port": self.port},
            "images": {"path": str(self.root)},
        }
        for key, value in overrides.items():
            section, _, name = key.partition("__")
            self.sections.setdefault(section, {})[name] = value
        self.process = None

    @property
    def url(self):
        """The root URL: XML-RPC, /status, /images/ and the mounts."""
        return f"http://127.0.0.1:{self.port}/"

    def write_config(self):
        """Write ``sections`` to the config file (before a start or a SIGHUP)."""
        self.config.write_text(render_config(self.sections))

    def start(self, wait=True, through=(), pass_fds=(), env=None):
        """Start twistd on the config; unless ``wait`` is false, until its port answers.

        ``through``: a command that execs twistd; ``pass_fds`` stay open in the
        child and ``env`` adds to its environment (a socket handed over as
        systemd does).
        """
        self.write_config()
        self._log = open(self.logfile, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen(
            [*through, self.twistd, "-n", "--pidfile=", "imagepipe", "-c", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.base, env=env,
            pass_fds=pass_fds)
        if wait:
            self.wait_listening(self.port)
        return self

    def wait_listening(self, port, timeout=30.0):
        """Wait until ``port`` accepts connections; fail with the log if imagepipe exits."""
        wait_listening(self.process, port, self.log, timeout, name="imagepipe")

    def proxy(self, **kwargs):
        """An XML-RPC client of the node."""
        return xmlrpc.client.ServerProxy(self.url, allow_none=True, **kwargs)

    def log(self):
        """What twistd wrote so far."""
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def send(self, sig):
        """Send the signal ``sig`` to the process."""
        self.process.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the process with ``sig`` (killed after ``timeout`` s); its exit code."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()
        return self.process.returncode if self.process else None

    def files(self):
        """Every regular file under the root, as relative paths."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in
                                                  p.relative_to(self.root).parts))
