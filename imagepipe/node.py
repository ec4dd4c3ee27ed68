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
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure

from imagepipe import config as configuration
from imagepipe import listening
from imagepipe.errors import ConfigError


class Node(MultiService):
    """The top service of one imagepipe process."""

    log = Logger()

    def __init__(self, reactor, config, site, workers, tree, parts=()):
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.site = site
        self.workers = workers
        self.tree = tree
        self.parts = tuple(parts)  # each has reload(config): what a SIGHUP reaches
        self.factory = WrappingFactory(site)
        self.ports = {}  # description -> IListeningPort: what listens now, whatever the file says
        workers.setServiceParent(self)

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
        """Open every configured listener now; ``ListenFailed`` if one cannot.

        Twisted's endpoints have listened (or failed) by the time ``listen``
        returns, which lets a failure end start-up with status 1 here.  An
        endpoint that would answer later (a plugin's) is refused rather than
        waited for with the node half started.
        """
        answers = []
        opening = listening.listen(self.reactor, self.config.network.listen, self.factory)
        opening.addBoth(answers.append)
        if not answers:
            opening.cancel()
            raise listening.ListenFailed(
                f"[network] listen = {', '.join(self.config.network.listen)}: an endpoint "
                f"that does not listen at once is not supported")
        if isinstance(answers[0], Failure):
            answers[0].raiseException()
        self.ports = answers[0]
        self._log_listening(self.ports)

    def _log_listening(self, ports):
        for description, port in ports.items():
            self.log.info("listening on {where}", where=listening.where(description, port))

    @defer.inlineCallbacks
    def stopService(self):
        self.workers.closing = True
        ports, self.ports = self.ports, {}
        yield defer.DeferredList([defer.maybeDeferred(port.stopListening)
                                  for port in ports.values()])
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
        if new.images.path != self.config.images.path:
            self.log.warn("[images] path changed: takes effect after a restart")
        if new.http != self.config.http:
            self.log.warn("[http] changed: takes effect after a restart")
        if new.network.access_log != self.config.network.access_log:
            self.log.warn("[network] access_log changed: takes effect after a restart")
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
