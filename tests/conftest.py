"""The fixtures: real imagepipe processes, the engines in-process, scripted origins.

The helpers they are made of, and that the tests import, live in ``support/``.
"""

import signal

import pytest

from support.magick import magick_status
from support.origins import Origin
from support.server import Server


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

    def make(host="127.0.0.1", port=0):
        started.append(Origin(host, port))
        return started[-1]

    yield make
    for origin in started:
        origin.stop()


@pytest.fixture
def origin(make_origin):
    """One scripted origin on 127.0.0.1, stopped after the test."""
    return make_origin()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """The S3 API server of the session (``support.s3``: moto_server, or the one named)."""
    from support.s3 import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def s3_proxy(s3):
    """A proxy in front of the S3 server that a test can make fail."""
    from support.s3 import FailingProxy

    proxy = FailingProxy(s3.endpoint)
    yield proxy
    proxy.close()
