"""The ZeroMQ side of replication: sockets, heartbeats, trimming, dispatch.

``ReplicationLinks`` is a service owning the sockets ``ZmqSockets`` makes:

* a PUB socket bound to ``publish``: every committed message (local or
  forwarded) and a heartbeat every second;
* a SUB socket per ``subscribe`` endpoint, feeding received messages to the
  replica on one apply thread, in arrival order;
* a ROUTER bound to ``sync`` and a DEALER per upstream ``sync`` endpoint,
  carrying the catch-up and full-sync conversations (``sync.PeerSync``);
  every heartbeat also acknowledges to each upstream what was applied.

A gap (a skipped sequence, or a heartbeat announcing more than was applied)
asks the upstream for a catch-up.  Every socket gets explicit high-water
marks and ``maxmsgsize`` before it binds or connects; with CURVE configured,
the ZAP authenticator is running before the first bind, or the node does not
start.
"""

from dataclasses import dataclass

import zmq
from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from txzmq import ZmqEndpoint, ZmqEndpointType, ZmqFactory
from txzmq.connection import ZmqConnection

from imagepipe.errors import ConfigError, ImagepipeError
from imagepipe.replication import messages
from imagepipe.replication.endpoints import sync_endpoint
from imagepipe.replication.messages import InvalidMessage
from imagepipe.replication.replica import GAP
from imagepipe.replication.sync import PeerSync
from imagepipe.replication.sync_messages import SyncRequest, encode_request


class _Socket(ZmqConnection):
    """A txZMQ connection that hands every multipart message to a callback."""

    def __init__(self, factory, socket_type, received=None):
        self.socketType = socket_type
        self.received = received
        super().__init__(factory)

    def messageReceived(self, message):
        if self.received is not None:
            self.received(message)


class ZmqSockets:
    """The ZeroMQ context of one node and the sockets made from it.

    Each socket is a txZMQ connection (``send(frames)``) with the settings'
    high-water marks and ``maxmsgsize`` set before it binds or connects, and
    this node's CURVE keys when CURVE is configured.
    """

    def __init__(self, reactor, settings):
        self.reactor = reactor
        self.settings = settings
        self.factory = None
        self.authenticator = None
        self.keys = None

    def open(self):
        """Make the context and start CURVE, or raise ``ConfigError`` with all closed again."""
        self.factory = ZmqFactory()
        self.factory.reactor = self.reactor
        self.factory.lingerPeriod = 0
        try:
            self.keys = self._start_curve()
        except ConfigError:
            self.close()
            raise

    def publisher(self):
        """The PUB socket, bound to every ``publish`` endpoint."""
        connection = self._socket(zmq.PUB, server=True)
        self._bind(connection, self.settings.publish)
        return connection

    def router(self, received):
        """The ROUTER socket bound to every ``sync`` endpoint; ``received(frames)`` per message."""
        connection = self._socket(zmq.ROUTER, server=True, received=received)
        self._bind(connection, self.settings.sync)
        return connection

    def subscriber(self, index, received):
        """A SUB socket taking everything ``subscribe[index]`` publishes."""
        connection = self._socket(zmq.SUB, server_key=self._server_key(index),
                                  received=received)
        connection.socket.setsockopt(zmq.SUBSCRIBE, b"")
        connection.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect,
                                             self.settings.subscribe[index])])
        return connection

    def dealer(self, index, received):
        """A DEALER connected to the sync endpoint of ``subscribe[index]``."""
        connection = self._socket(zmq.DEALER, server_key=self._server_key(index),
                                  received=received)
        endpoint = sync_endpoint(self.settings.subscribe[index])
        connection.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, endpoint)])
        return connection

    def close(self):
        """Shut every socket down, stop the authenticator, end the context."""
        for connection in list(self.factory.connections):
            connection.shutdown()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        self.factory.context.term()

    def _start_curve(self):
        """Start ZAP with the allowed keys; return this node's keys, or None."""
        settings = self.settings
        if not settings.curve_secret_key:
            return None
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        try:
            public, secret = load_certificate(settings.curve_secret_key)
            servers = [load_certificate(path)[0] for path in settings.curve_subscribe_keys]
            if secret is None:
                raise ValueError(f"no secret key in {settings.curve_secret_key}")
            self.authenticator = ThreadAuthenticator(self.factory.context)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=settings.curve_public_keys)
        except Exception as error:  # noqa: BLE001 - any failure means no authentication
            raise ConfigError(f"[replication] CURVE cannot start: {error}") from None
        return {"public": public, "secret": secret, "servers": servers}

    def _server_key(self, index):
        return self.keys and self.keys["servers"][index]

    def _socket(self, kind, server=False, server_key=None, received=None):
        connection = _Socket(self.factory, kind, received)
        socket = connection.socket
        socket.setsockopt(zmq.SNDHWM, self.settings.high_water_mark)
        socket.setsockopt(zmq.RCVHWM, self.settings.high_water_mark)
        socket.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)
        if self.keys:
            socket.curve_secretkey = self.keys["secret"]
            socket.curve_publickey = self.keys["public"]
            if server:
                socket.curve_server = True
            else:
                socket.curve_serverkey = server_key
        return connection

    def _bind(self, connection, endpoints):
        for endpoint in endpoints:
            try:
                connection.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, endpoint)])
            except zmq.ZMQError as error:
                raise ConfigError(f"[replication] cannot bind {endpoint}: {error}") from None


@dataclass(frozen=True)
class Peer:
    """An upstream peer: up while its heartbeats arrive (within three intervals).

    ``lag`` is how long ago this node last held everything the peer held:
    the age of the latest heartbeat whose applied map this node had applied
    too (within an interval while caught up; growing while it is behind or
    the peer is silent).  Before any heartbeat was covered, the age of the
    first one heard; None when none was.
    """

    endpoint: str
    up: bool
    silent_for: float | None  # seconds since its last heartbeat; None: never heard
    applied: dict  # what its last heartbeat said it has applied, per origin
    lag: float | None = None


class ReplicationLinks(Service):
    """Sockets, timers and the apply thread of one replicating node.

    ``sockets`` makes the sockets (``ZmqSockets`` unless given);
    ``apply_pool`` and ``io_pool`` are the one-thread pools for applies and
    for reads on behalf of peers (made here unless given).  The service
    starts and stops all three.
    """

    log = Logger()

    def __init__(self, reactor, replica, settings, sockets=None, apply_pool=None, io_pool=None,
                 reporter=None):
        self.reactor = reactor
        self.reporter = reporter  # imagepipe.reporting.Reporter (Sentry), or None
        self.heard = {}  # upstream endpoint -> (when its last heartbeat came, its applied map)
        self.held = {}  # upstream endpoint -> when the latest heartbeat this node covered came
        self.replica = replica
        self.settings = settings
        self.sockets = ZmqSockets(reactor, settings) if sockets is None else sockets
        self.apply_pool = (ThreadPool(1, 1, name="imagepipe-apply") if apply_pool is None
                           else apply_pool)
        self.io_pool = ThreadPool(1, 1, name="imagepipe-sync") if io_pool is None else io_pool
        self.upstreams = []  # (endpoint, dealer)
        self.sync = None  # the PeerSync, once the sockets exist
        self.beat = self.trimmer = None

    def peers(self):
        """Each upstream as it looks from here: ``Peer``s, in ``subscribe`` order."""
        now = self.reactor.seconds()
        mine = self.replica.applied()
        found = []
        for endpoint in self.settings.subscribe:
            when, applied = self.heard.get(endpoint, (None, {}))
            if when is not None and self._covers(mine, applied):
                self.held[endpoint] = when
            silent = None if when is None else now - when
            held = self.held.get(endpoint)
            found.append(Peer(endpoint, silent is not None
                              and silent < 3 * self.settings.heartbeat, silent, applied,
                              None if held is None else now - held))
        return found

    def _covers(self, mine, theirs):
        """True when ``mine`` (an applied map) holds every other node's change in ``theirs``."""
        return all(mine.get(origin, 0) >= seq for origin, seq in theirs.items()
                   if origin != self.replica.node)

    # Set-up ----------------------------------------------------------------

    def startService(self):
        super().startService()
        self.sockets.open()
        self.apply_pool.start()
        self.io_pool.start()
        self.pub = self.sockets.publisher()
        self.router = self.sockets.router(self._asked)
        for index, endpoint in enumerate(self.settings.subscribe):
            self.sockets.subscriber(index, lambda frames, e=endpoint: self._received(frames, e))
            dealer = self.sockets.dealer(index,
                                         lambda frames, e=endpoint: self._answered(frames, e))
            self.upstreams.append((endpoint, dealer))
        self.sync = PeerSync(self.reactor, self.replica, self.apply_pool, self.io_pool,
                             {endpoint: dealer.send for endpoint, dealer in self.upstreams},
                             self.router.send, self._received,
                             timeout=self.settings.heartbeat * 10)
        self.replica.notify = lambda: self.reactor.callFromThread(self._flush)
        self.beat = task.LoopingCall(self._heartbeat)
        self.beat.clock = self.reactor
        self.beat.start(self.settings.heartbeat, now=True)
        self.trimmer = task.LoopingCall(self._trim)
        self.trimmer.clock = self.reactor
        self.trimmer.start(min(60.0, max(1.0, self.settings.retention / 2)), now=False)
        for endpoint, _ in self.upstreams:
            self.sync.catch_up(endpoint)
        self._flush()

    def stopService(self):
        super().stopService()
        for loop in (self.beat, self.trimmer):
            if loop is not None and loop.running:
                loop.stop()
        if self.sync is not None:
            self.sync.stop()
        self.replica.notify = lambda: None
        for pool in (self.apply_pool, self.io_pool):
            if pool.started:
                pool.stop()
        self.sockets.close()

    # Publishing --------------------------------------------------------------

    def _flush(self):
        """Publish every committed message, in commit order."""
        if not self.running:
            return
        for frames in self.replica.take_outbox():
            self.pub.send(frames)

    def _heartbeat(self):
        self.pub.send(self.replica.heartbeat())
        ack = encode_request(SyncRequest("ack", self.replica.node,
                                         applied=self.replica.applied()))
        for _, dealer in self.upstreams:
            dealer.send(ack)

    def _trim(self):
        d = deferToThreadPool(self.reactor, self.io_pool, self.replica.trim,
                              self.settings.retention)
        d.addCallback(lambda dropped: dropped and self.log.info(
            "trimmed {count} journal records", count=dropped))
        d.addErrback(lambda failure: self.log.failure("trimming the journal failed", failure))
        return d

    # Receiving ---------------------------------------------------------------

    # The sockets exist before ``self.sync`` does, but the reactor reads none of
    # them before ``startService`` has returned.
    def _asked(self, frames):
        self.sync.asked(frames)

    def _answered(self, frames, upstream):
        self.sync.answered(frames, upstream)

    def _received(self, frames, upstream):
        try:
            head = messages.header(frames)
        except InvalidMessage as error:
            self.log.warn("dropped a message from {upstream}: {error}", upstream=upstream,
                          error=str(error))
            return
        if head.get("type") == "heartbeat":
            self._heard(frames, upstream)
            return
        d = deferToThreadPool(self.reactor, self.apply_pool, self.replica.apply, frames)
        d.addCallbacks(self._applied, self._refused, callbackArgs=(upstream,),
                       errbackArgs=(upstream,))

    def _heard(self, frames, upstream):
        try:
            beat = messages.decode(frames, self.replica.rules)
        except InvalidMessage as error:
            self.log.warn("dropped a heartbeat from {upstream}: {error}", upstream=upstream,
                          error=str(error))
            return
        now = self.reactor.seconds()
        self.heard[upstream] = (now, dict(beat.applied_map))
        self.held.setdefault(upstream, now)  # behind from the first heartbeat, if at all
        if self._covers(self.replica.applied(), beat.applied_map):
            self.held[upstream] = now
        else:
            self.sync.catch_up(upstream)

    def _applied(self, result, upstream):
        if result == GAP:
            self.sync.catch_up(upstream)

    def _refused(self, failure, upstream):
        if failure.check(InvalidMessage):
            self.log.warn("dropped an invalid message from {upstream}: {error}",
                          upstream=upstream, error=str(failure.value))
        elif failure.check(ImagepipeError):
            self.log.error("could not apply a message from {upstream}: {error}; will ask "
                           "again", upstream=upstream, error=str(failure.value))
        else:
            self.log.failure("applying a message from {upstream} failed", failure,
                             upstream=upstream)
            if self.reporter is not None:
                self.reporter.report(failure, peer=upstream, during="replication apply")
