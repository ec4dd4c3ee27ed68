"""A running imagepipe node: listener, reload on SIGHUP, drain on SIGTERM.

``Node`` is the top service.  It owns the worker pool and the listening
ports (``[network] listen``, through Twisted endpoints); on SIGHUP it re-reads
the config and hands it to each part that can change while running (each
``reload(config)``: credentials, body and client limits, umask, threads, path
rules, image limits), and moves its listeners itself.  On shutdown it stops
accepting, lets the calls in flight finish, closes connections once their
answers are flushed, and only then stops the pool.
"""

import signal
import sys

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from imagepipe import config as configuration
from imagepipe import listening
from imagepipe.errors import ConfigError


class Node(MultiService):
    """The top service of one imagepipe process."""

    log = Logger()

    def __init__(self, reactor, config, site, workers, tree, parts=(), log_observer=None,
                 metrics_site=None):
        super().__init__()
        self.log_observer = log_observer
        self.metrics_site = metrics_site  # what [metrics] listen serves, or None
        self.reactor = reactor
        self.config = config
        self.site = site
        self.workers = workers
        self.tree = tree
        self.parts = tuple(parts)  # each has reload(config): what a SIGHUP reaches
        self.factory = WrappingFactory(site)
        self.ports = {}  # description -> IListeningPort: what listens now, whatever the file says
        self.metrics_ports = {}  # the same for [metrics] listen (moved only by a restart)
        workers.setServiceParent(self)

    def setServiceParent(self, parent):
        # twistd's application: the observer it begins logging to, when one is given
        # ([network] log_format = json, imagepipe.logs).
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def startService(self):
        # Before the port opens: a SIGHUP that arrives once clients can
        # connect must reload, not end the process.
        signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        try:
            super().startService()
            self._listen_at_start()
        except (ConfigError, listening.ListenFailed) as failure:
            sys.stderr.write(f"imagepipe: {failure}\n")
            self._halt()
            raise SystemExit(1) from None
        self.workers.writes.pool.callInThread(self._sweep)

    def _sweep(self):
        removed = self.tree.sweep()
        if removed:
            self.log.info("removed {count} temporary files left by an earlier run",
                          count=removed)

    def _halt(self):
        """Stop the children that did start, so that the process can exit."""
        for child in reversed(list(self)):
            if child.running:
                try:
                    child.stopService()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    self.log.failure("stopping {child} failed", child=child)

    def _listen_at_start(self):
        """Open every configured listener now; ``ListenFailed`` if one cannot."""
        self.ports = self._open("[network] listen", self.config.network.listen, self.factory)
        if self.metrics_site is not None:
            self.metrics_ports = self._open("[metrics] listen",
                                            self.config.operations.metrics_listen,
                                            self.metrics_site, " for /metrics")

    def _open(self, key, descriptions, factory, what=""):
        """``{description: port}`` listening with ``factory``, or ``ListenFailed``.

        Twisted's endpoints have listened (or failed) by the time ``listen``
        returns, which lets a failure end start-up with status 1 here.  An
        endpoint that would answer later (a plugin's) is refused rather than
        waited for with the node half started.
        """
        answers = []
        opening = listening.listen(self.reactor, descriptions, factory)
        opening.addBoth(answers.append)
        if not answers:
            opening.cancel()
            raise listening.ListenFailed(
                f"{key} = {', '.join(descriptions)}: an endpoint that does not listen at "
                f"once is not supported")
        if isinstance(answers[0], Failure):
            answers[0].raiseException()
        self._log_listening(answers[0], what)
        return answers[0]

    def _log_listening(self, ports, what=""):
        for description, port in ports.items():
            self.log.info("listening on {where}{what}", where=listening.where(description, port),
                          what=what)

    @defer.inlineCallbacks
    def stopService(self):
        self.workers.closing = True
        ports = [*self.ports.values(), *self.metrics_ports.values()]
        self.ports, self.metrics_ports = {}, {}
        yield defer.DeferredList([defer.maybeDeferred(port.stopListening) for port in ports])
        timeout = self.config.network.shutdown_timeout
        if self.workers.in_flight:
            self.log.info("draining {count} calls in flight", count=self.workers.in_flight)
        yield _within(self.reactor, self.workers.drain(), timeout)
        yield _within(self.reactor, self._close_connections(), timeout)
        yield MultiService.stopService(self)

    def _close_connections(self):
        """Close every connection once its pending answer is written."""
        protocols = list(self.factory.protocols)
        closed = [defer.Deferred() for _ in protocols]
        for protocol, done in zip(protocols, closed):
            lost = protocol.connectionLost

            def connection_lost(reason, lost=lost, done=done):
                lost(reason)
                done.callback(None)

            protocol.connectionLost = connection_lost
            protocol.transport.loseConnection()
        return defer.DeferredList(closed)

    def reload(self):
        """Re-read the config file and apply what can change while running."""
        if self.workers.closing:  # draining: nothing opens again, nothing changes
            self.log.info("reload ignored: the node is shutting down")
            return
        try:
            new = configuration.load(self.config.filename)
        except ConfigError as failure:
            self.log.error("reload refused, keeping the running config: {error}",
                           error=str(failure))
            return
        for what in restart_only_changes(self.config, new):
            self.log.warn("{what} changed: takes effect after a restart", what=what)
        network = new.network
        if set(network.listen) != set(self.ports):
            self._move(network.listen)
        for part in self.parts:
            part.reload(new)
        self.config = new
        self.log.info("configuration reloaded from {file}", file=new.filename)

    def _move(self, wanted):
        """Listen on the descriptions ``wanted`` adds, then close those it drops.

        If one of the new ones cannot listen, the old ones stay as they are
        (and the next reload tries again).
        """
        dropped = [description for description in self.ports if description not in wanted]
        opening = listening.listen(self.reactor, [description for description in wanted
                                                  if description not in self.ports],
                                   self.factory)

        def switch(opened):
            self._log_listening(opened)
            for description in dropped:
                port = self.ports.pop(description)
                self.log.info("stopped listening on {where}",
                              where=listening.where(description, port))
                port.stopListening()
            self.ports.update(opened)

        def refuse(failure):
            failure.trap(listening.ListenFailed)
            self.log.error("reload: {error} Still listening on {places}.",
                           error=failure.getErrorMessage(),
                           places=", ".join(listening.where(description, port)
                                            for description, port in self.ports.items()))

        opening.addCallbacks(switch, refuse)
        opening.addErrback(self.log.failure, "reload: moving the listeners failed")


# What a reload does not reach (the parts read it once, when the node is built):
# a change is logged as needing a restart.  Everything else is some part's reload.
RESTART_ONLY = (
    ("[images] path", lambda c: c.images.path),
    ("[images] backend", lambda c: c.images.backend),
    ("[images] engine", lambda c: c.images.engine),
    ("[images] render_processes", lambda c: (c.images.render_processes,
                                             c.images.render_process_memory)),
    ("[network] serve_images", lambda c: c.network.serve_images),
    ("[network] access_log", lambda c: c.network.access_log),
    ("[network] node_name", lambda c: c.network.node_name),
    ("[network] log_format", lambda c: c.network.log_format),
    ("[imagemagick] env", lambda c: c.imagemagick.environment),
    ("[replication]", lambda c: c.replication),
    ("[http] or a dialect's section", lambda c: c.http),
    ("[s3]", lambda c: c.s3),
    ("[metrics]", lambda c: (c.operations.metrics_enabled, c.operations.metrics_open,
                             c.operations.metrics_listen, c.operations.statsd,
                             c.operations.statsd_prefix)),
    ("[errors]", lambda c: (c.operations.sentry_dsn, c.operations.environment)),
)


def restart_only_changes(old, new):
    """What changed from ``old`` to ``new`` (two ``Config``) that only a restart applies."""
    return [what for what, part in RESTART_ONLY if part(old) != part(new)]


def _within(reactor, d, seconds):
    """``d``, or None after ``seconds`` (waiting stops; nothing is cancelled)."""
    result = defer.Deferred()
    timer = reactor.callLater(seconds, lambda: result.called or result.callback(None))

    def fire(value):
        if timer.active():
            timer.cancel()
        if not result.called:
            result.callback(None)

    d.addBoth(fire)
    return result
