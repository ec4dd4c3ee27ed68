"""Shared test helpers: a real twistd process on a free port, and sample images.

``Server`` writes a config file, starts ``twistd -n imagepipe`` as a child
process and waits for its port to accept connections (an event, not a
sleep).  Outputs are decoded with Pillow, never with imagepipe's own code.
The sample pictures are in ``samples.py``; ports, waiting and scripted origins in
``support/``.
"""

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest
from PIL import Image

from support.net import free_port, wait_for  # noqa: F401 - the tests take them from here too

ROOT = Path(__file__).resolve().parent.parent
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
        return f"http://127.0.0.1:{self.port}/"

    def write_config(self):
        self.config.write_text(render_config(self.sections))

    def start(self, wait=True, through=(), pass_fds=(), env=None):
        """Run twistd, ``through`` a command that execs it if given; wait for the port.

        ``pass_fds`` stay open in the child and ``env`` adds to its environment
        (a socket handed over as systemd does).
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
        def listening():
            if self.process.poll() is not None:
                raise AssertionError(f"imagepipe exited ({self.process.returncode}):\n"
                                     f"{self.log()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, timeout, what=f"port {port}")

    def proxy(self, **kwargs):
        return xmlrpc.client.ServerProxy(self.url, allow_none=True, **kwargs)

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def send(self, sig):
        self.process.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A node with default settings, shared by the tests of one module."""
    node = Server(tmp_path_factory.mktemp("node"), images__max_pending=64).start()
    yield node
    node.stop()


@pytest.fixture
def make_server(tmp_path):
    """Start nodes with particular settings; all are stopped after the test."""
    started = []

    def make(**overrides):
        node = Server(tmp_path / f"node{len(started)}", **overrides)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop(signal.SIGKILL)


def b64(data):
    """Base64 text, as the original clients sent it."""
    return base64.b64encode(data).decode("ascii")


def picture(width, height, mode="RGB", fmt="JPEG", colour=(200, 30, 30), **save):
    """A generated image with a gradient, encoded by Pillow."""
    image = Image.new(mode, (width, height), colour if mode != "RGBA" else colour + (255,))
    pixels = image.load()
    for x in range(0, width, max(1, width // 64)):
        for y in range(height):
            pixels[x, y] = (x * 255 // width, y * 255 // height, 90) + (
                (255,) if mode == "RGBA" else ())
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def durations(image):
    """Every frame's duration (read once the frame is loaded)."""
    found = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        found.append(image.info["duration"])
    return found


def opened(data):
    """Decode bytes with Pillow (the independent decoder)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


_MAGICK = []  # the MagickStatus, once ImageMagick has been started in this process


def magick_status():
    """Start ImageMagick behind imagepipe's policy, once per test session."""
    if not _MAGICK:
        from imagepipe.config import MagickSettings
        from imagepipe.imaging import magick

        _MAGICK.append(magick.start(MagickSettings(convert="", thread_limit=1, time_limit=60,
                                                   limits=(), environment=())))
    return _MAGICK[0]


@pytest.fixture(scope="session", params=["wand", "pillow"], ids=["wand", "pillow"])
def engine(request):
    """Each engine in-process: Wand behind imagepipe's ImageMagick policy, and Pillow."""
    from imagepipe.imaging import ImageLimits

    limits = ImageLimits(max_pixels=50_000_000, max_frames=500)
    if request.param == "wand":
        status = magick_status()  # before anything imports Wand
        from imagepipe.imaging.wand_engine import WandEngine

        return WandEngine(limits, status.formats)
    from imagepipe.imaging.pillow_engine import PillowEngine, available_formats

    return PillowEngine(limits, available_formats())


@pytest.fixture
def make_origin():
    """Start scripted origins; all are stopped after the test."""
    started = []

    from support.origins import Origin

    def make(host="127.0.0.1", port=0):
        started.append(Origin(host, port))
        return started[-1]

    yield make
    for origin in started:
        origin.stop()


@pytest.fixture
def origin(make_origin):
    return make_origin()
