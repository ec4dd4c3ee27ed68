"""SIGHUP's reload on a memory reactor: what a changed file changes, what a bad one keeps."""

from types import SimpleNamespace

from twisted.logger import capturedLogs, formatEvent
from twisted.web.resource import Resource

from support.server import render_config
from imagepipe import config as configuration
from imagepipe.auth import Authenticator
from imagepipe.node import Node
from imagepipe.rpc import ImagepipeRPC
from imagepipe.store import ImageStore, StoreSettings
from imagepipe.tree import Tree
from imagepipe.web.site import ImagepipeSite
from imagepipe.web.tree import TreeResource
from imagepipe.workers import WorkerPool
from support.reactor import Reactor


def write(path, root, network=None, **images):
    path.write_text(render_config({
        "network": {"interface": "127.0.0.1", "port": 18085, **(network or {})},
        "images": {"path": str(root), **images}}))
    return configuration.load(str(path))


def node(tmp_path, reactor=None, **images):
    """A node of the real parts a reload reaches (no engine: nothing renders here)."""
    reactor = reactor or Reactor()
    config = write(tmp_path / "imagepipe.ini", tmp_path, **images)
    workers = WorkerPool(reactor, 1, 1, 1, 1)
    tree = Tree(str(tmp_path), config.images.umask, None)
    store = ImageStore(tree, SimpleNamespace(limits=config.image_limits), workers,
                       StoreSettings.of(config))
    rpc = ImagepipeRPC(store, Authenticator.of(config.network))
    view = TreeResource(tree, StoreSettings.of(config).rules)
    site = ImagepipeSite(Resource(), config.network.max_request_bytes, "",
                         config.network.clients, reactor=reactor)
    made = Node(reactor, config, site, workers, tree, [rpc, site, store, workers, view])
    made._listen_at_start()
    parts = SimpleNamespace(store=store, rpc=rpc, view=view, site=site, tree=tree)
    return made, reactor, parts


def test_a_reload_applies_limits_threads_and_quality(tmp_path):
    made, reactor, parts = node(tmp_path)
    write(tmp_path / "imagepipe.ini", tmp_path, io_threads=3, max_pending=7, quality=60,
          umask="0027", max_pixels="10MP", transliterate_paths="true")
    assert not parts.store.settings.rules.transliterate and not parts.view.rules.transliterate
    made.reload()
    assert (made.workers.writes.threads, made.workers.writes.max_pending) == (3, 7)
    assert parts.store.settings.quality == 60 and parts.tree.umask == 0o027
    assert parts.store.engine.limits.max_pixels == 10_000_000
    assert parts.store.settings.rules.transliterate and parts.view.rules.transliterate
    assert len(reactor.tcpServers) == 1  # the same address: the same port


def test_a_reload_applies_credentials_and_client_limits(tmp_path):
    made, _, parts = node(tmp_path)
    assert parts.rpc.authenticator.allows(None)
    (tmp_path / "tokens").write_text("s3cret\n")
    write(tmp_path / "imagepipe.ini", tmp_path,
          network={"auth": "token", "auth_file": "tokens", "max_request_bytes": "1MiB",
                   "max_connections": 77})
    made.reload()
    assert not parts.rpc.authenticator.allows(None)
    assert parts.rpc.authenticator.allows(b"Bearer s3cret")
    assert parts.site.max_request_bytes == 1 << 20
    assert parts.site.client_limits.max_connections == 77


def test_a_bad_file_keeps_the_running_config(tmp_path):
    made, _, parts = node(tmp_path, quality=70)
    (tmp_path / "imagepipe.ini").write_text("[images]\nquality = loud\n")
    made.reload()
    assert parts.store.settings.quality == 70 and made.config.images.quality == 70


def test_an_unreadable_credentials_file_keeps_every_part_as_it_was(tmp_path):
    made, _, parts = node(tmp_path, quality=70)
    (tmp_path / "tokens").write_text("# no token in here\n")
    (tmp_path / "imagepipe.ini").write_text(render_config({
        "network": {"port": 18085, "auth": "token", "auth_file": "tokens"},
        "images": {"path": str(tmp_path), "quality": 50}}))
    made.reload()
    assert parts.rpc.authenticator.allows(None)
    assert parts.store.settings.quality == 70 and made.config.images.quality == 70


def test_a_new_address_listens_there(tmp_path):
    made, reactor, _ = node(tmp_path)
    text = (tmp_path / "imagepipe.ini").read_text().replace("18085", "18086")
    (tmp_path / "imagepipe.ini").write_text(text)
    made.reload()
    assert [port for port, *_ in reactor.tcpServers] == [18085, 18086]
    assert made.config.network.port == 18086
    assert reactor.stopped == [18085]  # once the new one listens
    assert list(made.ports) == ["tcp:18086:interface=127.0.0.1"]


def test_a_new_address_that_cannot_listen_keeps_the_old_one(tmp_path):
    made, reactor, _ = node(tmp_path, Reactor(taken={18086}))
    text = (tmp_path / "imagepipe.ini").read_text().replace("18085", "18086")
    (tmp_path / "imagepipe.ini").write_text(text)
    with capturedLogs() as events:
        made.reload()
    assert [port for port, *_ in reactor.tcpServers] == [18085] and reactor.stopped == []
    assert ("reload: Couldn't listen on 127.0.0.1:18086: [Errno 98] Address already in use. "
            "Still listening on 0.0.0.0:18085 (tcp).") in [formatEvent(e) for e in events]
    assert list(made.ports) == ["tcp:18085:interface=127.0.0.1"]
    assert made.config.network.port == 18086  # the other settings still apply


def test_a_reload_while_shutting_down_opens_nothing(tmp_path):
    made, reactor, parts = node(tmp_path, quality=70)
    made.stopService()  # drains for up to shutdown_timeout on this reactor's clock
    assert reactor.stopped == [18085]  # the port is closed first
    text = (tmp_path / "imagepipe.ini").read_text().replace("18085", "18086")
    (tmp_path / "imagepipe.ini").write_text(text.replace("quality = 70", "quality = 50"))
    made.reload()
    assert [port for port, *_ in reactor.tcpServers] == [18085]
    assert made.ports == {} and parts.store.settings.quality == 70


def test_the_node_tap_builds_reloads_every_part_that_can_change(tmp_path, monkeypatch):
    from imagepipe import tap
    from imagepipe.imaging import magick

    config = write(tmp_path / "imagepipe.ini", tmp_path)
    built = tap.build(config, reactor=Reactor())
    kinds = {type(part).__name__ if not isinstance(part, type(magick)) else part.__name__
             for part in built.parts}
    assert kinds == {"ImagepipeRPC", "ImagepipeSite", "ImageStore", "WorkerPool",
                     "TreeResource", "imagepipe.imaging.magick"}
    applied = []
    monkeypatch.setattr(magick, "apply_limits", applied.append)
    magick.reload(config)
    assert applied == [config.imagemagick]
