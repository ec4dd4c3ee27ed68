"""twistd entry point: ``Options`` and ``makeService``, which assembles a node."""

import sys

from twisted.python import usage

from imagepipe.errors import ConfigError


class Options(usage.Options):
    """Command line of ``twistd imagepipe``."""

    optParameters = [
        ["config", "c", "imagepipe.ini", "Path to the configuration file."],
    ]


def makeService(options):
    """Build the node described by the config file; exit with one line if it is wrong."""
    try:
        return build(options["config"])
    except ConfigError as error:
        sys.stderr.write(f"imagepipe: {error}\n")
        raise SystemExit(1) from None


def build(filename, reactor=None):
    """Load ``filename`` and wire every part of a node together."""
    from twisted.logger import Logger

    from imagepipe import config as configuration
    from imagepipe.imaging import magick

    config = configuration.load(filename)
    status = magick.start(config.imagemagick)  # before anything imports Wand

    from imagepipe.auth import Authenticator
    from imagepipe.images import ImageStore
    from imagepipe.imaging.wand_engine import WandEngine
    from imagepipe.node import Node, image_limits, store_settings
    from imagepipe.rpc import ImagepipeRPC
    from imagepipe.store import Tree
    from imagepipe import __version__
    from imagepipe.web.site import ImagepipeSite, Root, Status
    from imagepipe.web.tree import TreeResource
    from imagepipe.workers import WorkerPool

    if reactor is None:
        from twisted.internet import reactor

    log = Logger(namespace="imagepipe")
    log.info("{version}; formats {formats}; limits {limits}", version=status.version,
             formats=", ".join(status.formats), limits=status.limits)
    if config.imagemagick.convert:
        log.info("[imagemagick] convert is not used: images are processed in-process")

    settings = store_settings(config)
    workers = WorkerPool(reactor, config.images.io_threads, config.images.max_pending)
    tree = Tree(config.images.path, config.images.umask)
    if config.images.engine == "pillow":
        from imagepipe.imaging.pillow_engine import PillowEngine, available_formats

        engine = PillowEngine(image_limits(config), available_formats())
    else:
        engine = WandEngine(image_limits(config), status.formats)
    log.info("engine {engine}: formats {formats}", engine=engine.name,
             formats=", ".join(sorted(engine.formats)))
    images = ImageStore(tree, engine, workers, settings)
    links = replication(reactor, config, tree, images, log) if config.replication.enabled else None
    rpc = ImagepipeRPC(images, Authenticator.from_settings(config.network))
    view = TreeResource(tree, settings.rules) if config.network.serve_images else None
    status_view = Status(workers, __version__)
    site = ImagepipeSite(Root(rpc, view, status_view), config.network.max_request_bytes)
    node = Node(reactor, config, site, images, workers, rpc, view, magick)
    if links is not None:
        links.setServiceParent(node)
    return node


def replication(reactor, config, tree, images, log):
    """The replica and its ZeroMQ links; local changes are journalled from now on."""
    from imagepipe.paths import PathRules
    from imagepipe.replication.hlc import HybridClock
    from imagepipe.replication.journal import Journal
    from imagepipe.replication.links import ReplicationLinks
    from imagepipe.replication.replica import Replica
    from imagepipe.replication.state import ReplicaState

    settings = config.replication
    state = ReplicaState(settings.state_path)
    journal = Journal(f"{settings.state_path}/journal")
    replica = Replica(tree, journal, state, HybridClock(), PathRules(),
                      forward=settings.forward)
    recovered = replica.recover()
    log.info("replication: node {node}; journal records {first}..{last}; re-applied "
             "{recovered} after a restart; publish {publish}; subscribe {subscribe}",
             node=state.node, first=journal.first_number, last=journal.last_number,
             recovered=recovered, publish=", ".join(settings.publish) or "-",
             subscribe=", ".join(settings.subscribe) or "-")
    images.commit = replica.committing
    return ReplicationLinks(reactor, replica, settings)
