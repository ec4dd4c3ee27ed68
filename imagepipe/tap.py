"""twistd entry point: ``Options`` and ``makeService``, which assembles a node."""

import os
import sys

from twisted.python import usage

from imagepipe.errors import ConfigError


class Options(usage.Options):
    """Command line of ``twistd imagepipe``: the config file, loaded and checked here."""

    longdesc = ("Runs an imagepipe node: twistd -n imagepipe -c imagepipe.ini. Every setting "
                "is described in imagepipe.ini.dist.")
    optParameters = [
        ["config", "c", "imagepipe.ini", "Path to the configuration file."],
    ]

    def postOptions(self):
        from imagepipe import config as configuration

        try:
            self.loaded = configuration.load(self["config"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


def makeService(options):
    """Build the node the loaded config describes; exit with one line if a part cannot start.

    A wrong config never gets here (``Options.postOptions``); what can still
    fail is what only starting finds: a cache directory that cannot be used,
    a signing-key file that cannot be read.
    """
    config = options.loaded
    observer = None
    if config.network.log_format == "json":
        from imagepipe.logs import json_observer

        observer = json_observer(getattr(options, "parent", None))
    try:
        return build(config, log_observer=observer)
    except ConfigError as error:
        sys.stderr.write(f"imagepipe: {error}\n")
        raise SystemExit(1) from None


def build(config, reactor=None, log_observer=None):
    """Wire every part of the node ``config`` (a loaded ``Config``) describes.

    ``log_observer``: what twistd logs to instead of its text lines (``imagepipe.logs``).
    """
    from twisted.logger import Logger

    from imagepipe.imaging import magick

    status = magick.start(config.imagemagick)  # before anything imports Wand

    from contextlib import nullcontext

    from imagepipe import __version__
    from imagepipe.auth import Authenticator
    from imagepipe.lag import LagProbe
    from imagepipe.node import Node
    from imagepipe.replication.links import ReplicationLinks
    from imagepipe.rpc import ImagepipeRPC
    from imagepipe.store import ImageStore, StoreSettings
    from imagepipe.web.health import Health
    from imagepipe.metrics import NodeState
    from imagepipe.web.operator import OperatorApi, OperatorPage
    from imagepipe.web.site import ImagepipeSite, MetricsPage, MetricsRoot, Root, Status
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

    metrics, reporter = operations(config, log)
    settings = StoreSettings.of(config)
    storage = make_storage(config)
    engine = make_engine(config, status)
    log.info("engine {engine}: formats {formats}", engine=engine.name,
             formats=", ".join(sorted(engine.formats)))
    processes = render_processes(config, log)
    workers = WorkerPool(reactor, config.images.io_threads, config.images.max_pending,
                         config.http.render_threads, config.http.max_render_pending,
                         config.network.clients.max_connections,
                         helpers=[processes] if processes is not None else [])
    replica = make_replica(config, storage, log) if config.replication.enabled else None
    images = ImageStore(storage, engine, workers, settings,
                        commit=replica.committing if replica is not None else nullcontext)
    rpc = ImagepipeRPC(images, Authenticator.of(config.network), metrics, reporter)
    view = (TreeResource(storage, settings.rules)
            if config.network.serve_images and storage.local_root is not None else None)
    if config.network.serve_images and view is None:
        log.info("/images/ is not served: the images are in a bucket, which serves them")
    sources = make_sources(reactor, config, storage)
    renderer, mounts = on_the_fly(config, storage, engine, processes, sources, workers, log,
                                  metrics, reporter)
    lag = LagProbe(reactor)
    health = Health(renderer.engine if renderer is not None else engine, workers)
    links = (ReplicationLinks(reactor, replica, config.replication, reporter=reporter)
             if replica is not None else None)
    metrics.watch(NodeState(workers, renderer, renderer.cache if renderer else None, replica,
                            links))
    about = {"node": config.network.node_name, "engine": engine.name,
             "formats": sorted(engine.formats), "backend": config.images.backend}
    status_page = Status(workers, __version__, renderer, lag, about, replica, links, rpc)
    page = OperatorPage(rpc)
    api = OperatorApi(rpc, images, workers, [(mount.mount, mount.dialect) for mount in
                                             mounts.values()], signer_of(mounts))
    metrics_page = (MetricsPage(metrics, workers, rpc, config.operations.metrics_open)
                    if config.operations.metrics_enabled else None)
    metrics_site = None
    if metrics_page is not None and config.operations.metrics_listen:
        # Its own endpoints: served only there, and not logged (a scrape every few seconds).
        metrics_site = ImagepipeSite(MetricsRoot(metrics_page), 64 << 10, "",
                                     reactor=reactor)
        metrics_page = None
    root = Root(rpc, view, status_page, health, mounts, metrics_page, page, api)
    site = ImagepipeSite(root, config.network.max_request_bytes, config.network.access_log,
                         config.network.clients, reactor=reactor)
    parts = [part for part in (rpc, site, images, workers, view, magick) if part is not None]
    node = Node(reactor, config, site, workers, storage, parts, log_observer, metrics_site)
    for child in (sources.get("origins"), links, lag):
        if child is not None:
            child.setServiceParent(node)
    return node


def operations(config, log):
    """``Metrics`` (statsd too when ``[metrics] statsd`` is set) and the Sentry reporter
    (or None)."""
    from imagepipe import __version__
    from imagepipe.metrics import Metrics

    settings = config.operations
    statsd = None
    if settings.statsd is not None:
        from statsd import StatsClient

        statsd = StatsClient(*settings.statsd, prefix=settings.statsd_prefix)
        log.info("statsd: {host}:{port}, prefix {prefix}", host=settings.statsd[0],
                 port=settings.statsd[1], prefix=settings.statsd_prefix)
    reporter = None
    if settings.sentry_dsn:
        from imagepipe.reporting import Reporter

        reporter = Reporter(settings.sentry_dsn, config.network.node_name, __version__,
                            settings.environment)
        log.info("unexpected errors are reported to Sentry")
    return Metrics(statsd, counting=settings.metrics_enabled), reporter


def signer_of(mounts):
    """The URL signer the mounts share, or None when URLs are not signed."""
    return next((mount.signer for mount in mounts.values()), None)


def make_storage(config):
    """Where the images live: the tree at ``[images] path``, or the ``[s3]`` bucket."""
    from twisted.logger import Logger

    if config.images.backend == "s3":
        return s3_bucket(config)
    from imagepipe.tree import Tree

    return Tree(config.images.path, config.images.umask, Logger(namespace="imagepipe.tree"))


def s3_bucket(config):
    """The ``[s3]`` bucket, once S3 answered for it; a start-up error naming it if not."""
    from twisted.logger import Logger

    from imagepipe.bucket import open_bucket
    from imagepipe.errors import OperationFailed

    try:
        return open_bucket(config.s3, Logger(namespace="imagepipe.bucket"))
    except OperationFailed as error:
        where = config.s3.endpoint_url or "AWS"
        raise ConfigError(f"{config.filename}: [s3] {error} (at {where})") from None


def make_engine(config, status):
    """The engine ``[images] engine`` names, with the config's limits (after magick.start)."""
    from imagepipe.imaging import engines

    return engines.make(config.images.engine, config.image_limits, status)


def child_settings(config):
    """What a render process needs of the node's config (``processes._Worker`` takes it)."""
    return {"imagemagick": config.imagemagick, "engine": config.images.engine,
            "path": config.images.path, "limits": config.image_limits,
            "retire_bytes": config.images.render_process_memory}


def render_processes(config, log):
    """The render processes ``[images] render_processes`` asks for, or None."""
    if not (config.images.render_processes and config.http.mounts):
        return None
    from imagepipe.imaging.processes import RenderProcesses

    log.info("on-the-fly renders in {count} child processes",
             count=config.images.render_processes)
    return RenderProcesses(config.images.render_processes, child_settings(config))


def make_sources(reactor, config, storage):
    """{name: source} of the on-the-fly mounts: the store's storage, a bucket, HTTP origins."""
    from imagepipe.web.sources import OriginSource, StoredSource

    revalidate = config.s3.revalidate
    sources = {"tree": StoredSource(storage, revalidate if storage.local_root is None else 0)}
    if config.http.mounts and config.http.origins is not None:
        from imagepipe.web.origins.client import HttpOrigins

        sources["origins"] = OriginSource(HttpOrigins(reactor, config.http.origins))
    if any(mount.source == "s3" for mount in config.http.mounts):
        bucket = storage if config.images.backend == "s3" else s3_bucket(config)
        if config.s3.origins_fallback:
            from imagepipe.web.sources import FallingBack

            fallback = FallingBack(bucket, sources["origins"].origins, reactor)
            sources["s3"] = StoredSource(fallback, revalidate, versions_known=False)
        else:
            sources["s3"] = StoredSource(bucket, revalidate)
    return sources


def on_the_fly(config, storage, engine, processes, sources, workers, log, metrics=None,
               reporter=None):
    """The renderer and one resource per enabled dialect ({first segment: Mount})."""
    from imagepipe import __version__
    from imagepipe.web import cache as results
    from imagepipe.web.cache_keys import fingerprint
    from imagepipe.web import dialects
    from imagepipe.web.mount import Mount
    from imagepipe.web.render import Renderer
    from imagepipe.web.signing import Signer, read_keys

    settings = config.http
    if not settings.mounts:
        return None, {}
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
            cache = results.ResultCache(settings.cache_path, settings.cache_max_bytes,
                                        fingerprint(__version__, engine, settings,
                                                    signer.keys if signer else ()))
        except OSError as error:
            raise ConfigError(f"{config.filename}: [http] cache_path = "
                              f"{settings.cache_path!r}: cannot use it: "
                              f"{error.strerror}") from None
        if cache.emptied:
            log.info("result cache: emptied (the settings results depend on changed)")
        storage.listeners.append(lambda change: cache.invalidate(change.paths))
        workers.renders.pool.callInThread(cache.tidy, log)
    if processes is not None:
        from imagepipe.imaging.processes import ProcessEngine

        engine = ProcessEngine(engine, processes)
    renderer = Renderer(engine, workers, cache, sources, settings, metrics, reporter)
    mounts = {}
    for mount in settings.mounts:
        mounts[mount.prefix.strip("/").encode()] = Mount(
            mount, dialects.named(mount.dialect), renderer, signer, settings.accel_redirect)
        log.info("on-the-fly: {dialect} at {prefix} from the {source}", dialect=mount.dialect,
                 prefix=mount.prefix, source=mount.source)
    log.info("result cache: {cache}", cache=f"{settings.cache_path}, max "
             f"{settings.cache_max_bytes} bytes" if cache else "off")
    return renderer, mounts


def make_replica(config, storage, log):
    """The replica: local changes are journalled from now on; recovered after a crash."""
    from imagepipe.paths import PathRules
    from imagepipe.replication.hlc import HybridClock
    from imagepipe.replication.journal import Journal
    from imagepipe.replication.replica import Replica
    from imagepipe.replication.state import ReplicaState

    settings = config.replication
    state = ReplicaState(settings.state_path)
    journal = Journal(f"{settings.state_path}/journal")
    replica = Replica(storage, journal, state, HybridClock(), PathRules(),
                      forward=settings.forward)
    recovered = replica.recover()
    log.info("replication: node {node}; journal records {first}..{last}; re-applied "
             "{recovered} after a restart; publish {publish}; subscribe {subscribe}",
             node=state.node, first=journal.first_number, last=journal.last_number,
             recovered=recovered, publish=", ".join(settings.publish) or "-",
             subscribe=", ".join(settings.subscribe) or "-")
    return replica
