"""twistd entry point: ``Options`` and ``makeService``, which assembles a node."""

import os
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
    from imagepipe.store import ImageStore
    from imagepipe.node import Node, store_settings
    from imagepipe.rpc import ImagepipeRPC
    from imagepipe.tree import Tree
    from imagepipe import __version__
    from imagepipe.web.site import ImagepipeSite, Root, Status
    from imagepipe.web.tree import TreeResource
    from imagepipe.workers import WorkerPool

    if reactor is None:
        from twisted.internet import reactor

    log = Logger(namespace="imagepipe")
    log.info("{version}; formats {formats}; limits {limits}", version=status.version,
             formats=", ".join(status.formats), limits=status.limits)
    log.info("ImageMagick policy in force: refuses {refused}; not in this ImageMagick: "
             "{absent}", refused=", ".join(status.refused),
             absent=", ".join(status.absent) or "none")
    if config.imagemagick.convert:
        log.info("[imagemagick] convert is not used: images are processed in-process")

    settings = store_settings(config)
    workers = WorkerPool(reactor, config.images.io_threads, config.images.max_pending,
                         config.http.render_threads, config.http.max_render_pending,
                         config.network.clients.max_connections)
    tree = Tree(config.images.path, config.images.umask, Logger(namespace="imagepipe.tree"))
    engine = make_engine(config, status)
    log.info("engine {engine}: formats {formats}", engine=engine.name,
             formats=", ".join(sorted(engine.formats)))
    images = ImageStore(tree, engine, workers, settings)
    links = replication(reactor, config, tree, images, log) if config.replication.enabled else None
    rpc = ImagepipeRPC(images, Authenticator.from_settings(config.network))
    view = TreeResource(tree, settings.rules) if config.network.serve_images else None
    renderer, mounts = on_the_fly(reactor, config, tree, engine, workers, log)
    from imagepipe.lag import LagProbe

    lag = LagProbe(reactor)
    status_view = Status(workers, __version__, renderer, lag)
    from imagepipe.web.health import Health

    health = Health(renderer.engine if renderer is not None else engine, workers)
    root = Root(rpc, view, status_view, health, mounts)
    site = ImagepipeSite(root, config.network.max_request_bytes, config.network.access_log,
                         config.network.clients, reactor=reactor)
    node = Node(reactor, config, site, images, workers, rpc, view, magick)
    if renderer is not None and "origins" in renderer.sources:
        renderer.sources["origins"].setServiceParent(node)
    if links is not None:
        links.setServiceParent(node)
    lag.setServiceParent(node)
    return node


def make_engine(config, status):
    """The engine ``[images] engine`` names, with the config's limits (after magick.start)."""
    from imagepipe.imaging import engines
    from imagepipe.node import image_limits

    return engines.make(config.images.engine, image_limits(config), status)


def child_settings(config):
    """What a render process needs of the node's config (``processes._Worker`` takes it)."""
    from imagepipe.node import image_limits

    return {"imagemagick": config.imagemagick, "engine": config.images.engine,
            "path": config.images.path, "limits": image_limits(config),
            "retire_bytes": config.images.render_process_memory}


def on_the_fly(reactor, config, tree, engine, workers, log):
    """The renderer and one resource per enabled dialect ({first segment: Mount})."""
    import importlib

    from imagepipe.web.cache import ResultCache
    from imagepipe.web.render import Mount, Renderer
    from imagepipe.web.signing import Signer, read_keys
    from imagepipe.web.sources import OriginSource, TreeSource

    settings = config.http
    if not settings.mounts:
        return None, {}
    sources = {"tree": TreeSource(tree)}
    if settings.origins is not None:
        from imagepipe.web.origins.client import HttpOrigins

        sources["origins"] = OriginSource(HttpOrigins(reactor, settings.origins))
    signer = None
    if settings.sign_keys:
        try:
            signer = Signer(read_keys(settings.sign_keys))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{config.filename}: [http] sign_keys = "
                              f"{settings.sign_keys!r}: {error}") from None
    cache = None
    if settings.cache_max_bytes:
        try:
            os.makedirs(settings.cache_path, exist_ok=True)
            cache = ResultCache(settings.cache_path, settings.cache_max_bytes,
                                fingerprint(config, engine, signer))
        except OSError as error:
            raise ConfigError(f"{config.filename}: [http] cache_path = "
                              f"{settings.cache_path!r}: cannot use it: "
                              f"{error.strerror}") from None
        if cache.emptied:
            log.info("result cache: emptied (the settings results depend on changed)")
        tree.listeners.append(lambda change: cache.invalidate(change.paths))
        workers.renders.pool.callInThread(_reconcile, cache, log)
    if config.images.render_processes:
        from imagepipe.imaging.processes import ProcessEngine, RenderProcesses

        processes = RenderProcesses(config.images.render_processes, child_settings(config))
        workers.starters.append(processes.start)
        workers.closers.append(processes.close)
        log.info("on-the-fly renders in {count} child processes",
                 count=config.images.render_processes)
        engine = ProcessEngine(engine, processes)
    renderer = Renderer(engine, workers, cache, sources, settings)
    mounts = {}
    for mount in settings.mounts:
        dialect = importlib.import_module(f"imagepipe.web.dialects.{mount.dialect}")
        mounts[mount.prefix.strip("/").encode()] = Mount(
            mount, dialect.parse, renderer, signer, settings.accel_redirect)
        log.info("on-the-fly: {dialect} at {prefix} from the {source}", dialect=mount.dialect,
                 prefix=mount.prefix, source=mount.source)
    log.info("result cache: {cache}", cache=f"{settings.cache_path}, max "
             f"{settings.cache_max_bytes} bytes" if cache else "off")
    return renderer, mounts


def fingerprint(config, engine, signer):
    """What cached results depend on besides the request: a change empties the cache."""
    import hashlib

    from imagepipe import __version__

    settings = config.http
    described = _stable((__version__, engine.name, engine.formats, settings.quality,
                         settings.auto_avif, settings.mounts, settings.origins,
                         [key.hex() for key in signer.keys] if signer else []))
    return hashlib.sha256(described.encode()).hexdigest()


def _stable(value):
    """A text for ``value`` that is the same in every process (sets sorted, not hashed)."""
    import dataclasses

    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return "{" + ",".join(f"{_stable(k)}:{_stable(v)}" for k, v in
                              sorted(value.items(), key=lambda item: repr(item[0]))) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_stable(v) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_stable(v) for v in value) + "]"
    return repr(value)


def _reconcile(cache, log):
    stray, missing = cache.reconcile()
    if stray or missing:
        log.info("result cache: removed {stray} unindexed files and {missing} entries "
                 "without a file", stray=stray, missing=missing)


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
