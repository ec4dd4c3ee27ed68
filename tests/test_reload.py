"""SIGHUP's reload on a memory reactor: what a changed file changes, what a bad one keeps."""

from types import SimpleNamespace

from twisted.internet.testing import MemoryReactorClock

from support.server import render_config
from imagepipe import config as configuration
from imagepipe.node import Node, image_limits, store_settings
from imagepipe.workers import WorkerPool


def write(path, root, **images):
    path.write_text(render_config({"network": {"interface": "127.0.0.1", "port": 18085},
                                   "images": {"path": str(root), **images}}))
    return configuration.load(str(path))


def node(tmp_path, **images):
    reactor = MemoryReactorClock()
    config = write(tmp_path / "imagepipe.ini", tmp_path, **images)
    workers = WorkerPool(reactor, 1, 1, 1, 1)
    images_store = SimpleNamespace(settings=store_settings(config), workers=workers,
                                   tree=SimpleNamespace(umask=config.images.umask),
                                   engine=SimpleNamespace(limits=image_limits(config)))
    site = SimpleNamespace(max_request_bytes=0, client_limits=None)
    made = Node(reactor, config, site, images_store, workers, SimpleNamespace(authenticator=None),
                None, None)
    made._listen(config.network)
    return made, reactor


def test_a_reload_applies_limits_threads_and_quality(tmp_path):
    made, reactor = node(tmp_path)
    write(tmp_path / "imagepipe.ini", tmp_path, io_threads=3, max_pending=7, quality=60,
          umask="0027", max_pixels="10MP")
    made.reload()
    assert (made.workers.writes.threads, made.workers.writes.max_pending) == (3, 7)
    assert made.images.settings.quality == 60 and made.images.tree.umask == 0o027
    assert made.images.engine.limits.max_pixels == 10_000_000
    assert len(reactor.tcpServers) == 1  # the same address: the same port


def test_a_bad_file_keeps_the_running_config(tmp_path):
    made, _ = node(tmp_path, quality=70)
    (tmp_path / "imagepipe.ini").write_text("[images]\nquality = loud\n")
    made.reload()
    assert made.images.settings.quality == 70 and made.config.images.quality == 70


def test_a_new_address_listens_there(tmp_path):
    made, reactor = node(tmp_path)
    text = (tmp_path / "imagepipe.ini").read_text().replace("18085", "18086")
    (tmp_path / "imagepipe.ini").write_text(text)
    made.reload()
    assert [port for port, *_ in reactor.tcpServers] == [18085, 18086]
    assert made.config.network.port == 18086
