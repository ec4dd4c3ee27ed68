"""The ZeroMQ side of replication: publish, subscribe, catch-up, heartbeats.

``ReplicationLinks`` is a service owning one ZeroMQ context and its sockets:

* a PUB socket bound to ``publish``: every committed message (local or
  forwarded) and a heartbeat every second;
* a SUB socket per ``subscribe`` endpoint, feeding received messages to the
  replica on one apply thread, in arrival order;
* a ROUTER bound to ``sync``: answers catch-up requests from the journal and
  records peers' acknowledgements;
* a DEALER per upstream ``sync`` endpoint: asks for catch-up when a gap shows
  (a skipped sequence, or a heartbeat announcing more than was applied) and
  acknowledges what was applied.

Every socket gets explicit high-water marks and ``maxmsgsize`` before it
binds or connects; with CURVE configured, the ZAP authenticator is running
before the first bind, or the node does not start.
"""

import json

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
from imagepipe.replication.sync_messages import decode_state, encode_state, state_from_row

# Records per catch-up answer: the asking node's reactor reads a whole answer
# in one go (txZMQ reads every queued message), so a batch is kept to about a
# millisecond of its time.
CATCHUP_BATCH = 50
MANIFEST_BATCH = 2000
FETCH_BATCH = 100


class _Socket(ZmqConnection):
    """A txZMQ connection that hands every multipart message to a callback."""

    def __init__(self, factory, socket_type, received=None):
        self.socketType = socket_type
        self.received = received
        super().__init__(factory)

    def messageReceived(self, message):
        if self.received is not None:
            self.received(message)


class ReplicationLinks(Service):
    """Sockets, timers and the apply thread of one replicating node."""

    log = Logger()

    def __init__(self, reactor, replica, settings):
        self.reactor = reactor
        self.replica = replica
        self.settings = settings
        self.apply_pool = ThreadPool(1, 1, name="imagepipe-apply")
        self.io_pool = ThreadPool(1, 1, name="imagepipe-sync")
        self.upstreams = []  # (endpoint, dealer)
        self.catching_up = set()  # upstream endpoints with a request outstanding
        self.syncing = {}  # upstream endpoint -> full sync in progress
        self.replayed = {}  # upstream endpoint -> messages replayed in this catch-up
        self.catchup_started = {}  # upstream endpoint -> when the catch-up began
        self.authenticator = None
        self.factory = None

    # Set-up ----------------------------------------------------------------

    def startService(self):
        super().startService()
        self.factory = ZmqFactory()
        self.factory.reactor = self.reactor
        self.factory.lingerPeriod = 0
        try:
            keys = self._start_curve()
        except ConfigError:
            self._close_zmq()
            raise
        self.apply_pool.start()
        self.io_pool.start()
        self.pub = self._socket(zmq.PUB, keys, server=True)
        self._bind(self.pub, self.settings.publish)
        self.router = self._socket(zmq.ROUTER, keys, server=True, received=self._sync_request)
        self._bind(self.router, self.settings.sync)
        for index, endpoint in enumerate(self.settings.subscribe):
            server_key = keys and keys["servers"][index]
            sub = self._socket(zmq.SUB, keys, server_key=server_key,
                               received=lambda frames, e=endpoint: self._received(frames, e))
            sub.socket.setsockopt(zmq.SUBSCRIBE, b"")
            sub.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, endpoint)])
            dealer = self._socket(zmq.DEALER, keys, server_key=server_key,
                                  received=lambda frames, e=endpoint: self._sync_answer(frames, e))
            dealer.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, sync_endpoint(endpoint))])
            self.upstreams.append((endpoint, dealer))
        self.replica.notify = lambda: self.reactor.callFromThread(self._flush)
        self.beat = task.LoopingCall(self._heartbeat)
        self.beat.clock = self.reactor
        self.beat.start(self.settings.heartbeat, now=True)
        self.trimmer = task.LoopingCall(self._trim)
        self.trimmer.clock = self.reactor
        self.trimmer.start(min(60.0, max(1.0, self.settings.retention / 2)), now=False)
        for endpoint, _ in self.upstreams:
            self._catch_up(endpoint)
        self._flush()

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

    def _socket(self, kind, keys, server=False, server_key=None, received=None):
        connection = _Socket(self.factory, kind, received)
        socket = connection.socket
        socket.setsockopt(zmq.SNDHWM, self.settings.high_water_mark)
        socket.setsockopt(zmq.RCVHWM, self.settings.high_water_mark)
        socket.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)
        if keys:
            socket.curve_secretkey = keys["secret"]
            socket.curve_publickey = keys["public"]
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

    def stopService(self):
        super().stopService()
        for loop in (getattr(self, "beat", None), getattr(self, "trimmer", None)):
            if loop is not None and loop.running:
                loop.stop()
        self.replica.notify = lambda: None
        for pool in (self.apply_pool, self.io_pool):
            if pool.started:
                pool.stop()
        self._close_zmq()

    def _close_zmq(self):
        for connection in list(self.factory.connections):
            connection.shutdown()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        self.factory.context.term()

    # Publishing --------------------------------------------------------------

    def _flush(self):
        """Publish every committed message, in commit order."""
        if not self.running:
            return
        for frames in self.replica.take_outbox():
            self.pub.send(frames)

    def _heartbeat(self):
        self.pub.send(self.replica.heartbeat())
        ack = json.dumps({"type": "ack", "node": self.replica.node,
                          "applied": self.replica.applied()}).encode()
        for _, dealer in self.upstreams:
            dealer.send([ack])

    def _trim(self):
        d = deferToThreadPool(self.reactor, self.io_pool, self.replica.trim,
                              self.settings.retention)
        d.addCallback(lambda dropped: dropped and self.log.info(
            "trimmed {count} journal records", count=dropped))
        d.addErrback(lambda failure: self.log.failure("trimming the journal failed", failure))
        return d

    # Receiving ---------------------------------------------------------------

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
        mine = self.replica.applied()
        if any(seq > mine.get(origin, 0) for origin, seq in beat.applied_map.items()
               if origin != self.replica.node):
            self._catch_up(upstream)

    def _applied(self, result, upstream):
        if result == GAP:
            self._catch_up(upstream)

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

    # Catch-up, as the asking side -------------------------------------------

    def _catch_up(self, upstream):
        if upstream in self.catching_up or upstream in self.syncing or not self.running:
            return
        self.catching_up.add(upstream)
        self.catchup_started.setdefault(upstream, self.reactor.seconds())
        dealer = dict(self.upstreams)[upstream]
        request = {"type": "catchup", "node": self.replica.node,
                   "applied": self.replica.applied(), "limit": CATCHUP_BATCH}
        dealer.send([json.dumps(request).encode()])
        self.reactor.callLater(self.settings.heartbeat * 10, self.catching_up.discard, upstream)

    def _sync_answer(self, frames, upstream):
        try:
            head = messages.header(frames)
        except InvalidMessage as error:
            self.log.warn("bad answer from {upstream}: {error}", upstream=upstream,
                          error=str(error))
            return
        kind = head.get("type")
        if kind in ("store", "move", "delete"):
            self.replayed[upstream] = self.replayed.get(upstream, 0) + 1
            self._received(frames, upstream)
        elif kind == "caught-up":
            d = deferToThreadPool(self.reactor, self.apply_pool, lambda: None)
            d.addCallback(lambda _: self._caught_up(upstream, head.get("more")))
        elif kind == "full-sync-needed":
            if upstream not in self.syncing:
                self._full_sync(upstream)
        elif kind in ("manifest-part", "manifest-end", "file", "fetch-end"):
            self._full_sync_answer(head, frames, upstream)

    def _caught_up(self, upstream, more):
        self.catching_up.discard(upstream)
        if more:
            self._catch_up(upstream)
            return
        replayed = self.replayed.pop(upstream, 0)
        started = self.catchup_started.pop(upstream, self.reactor.seconds())
        if replayed:
            self.log.info("caught up {count} messages from {upstream} in {seconds:.1f} s",
                          count=replayed, upstream=upstream,
                          seconds=self.reactor.seconds() - started)

    # Catch-up, as the answering side ----------------------------------------

    def _sync_request(self, frames):
        sender, body = frames[0], frames[-1]
        try:
            request = json.loads(body)
            kind = request["type"]
            node = request["node"]
            applied = {str(k): int(v) for k, v in dict(request.get("applied", {})).items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            self.log.warn("dropped a malformed sync request")
            return
        if kind == "ack":
            self.io_pool.callInThread(self.replica.record_peer, str(node), applied)
        elif kind == "manifest":
            d = deferToThreadPool(self.reactor, self.io_pool, self.replica.manifest)
            d.addCallback(self._send_manifest, sender)
        elif kind == "fetch":
            paths = request.get("paths")
            if not isinstance(paths, list) or len(paths) > FETCH_BATCH:
                self.log.warn("dropped a malformed fetch request from {node}", node=node)
                return
            d = deferToThreadPool(self.reactor, self.io_pool,
                                  lambda: [self.replica.path_state(str(p)) for p in paths])
            d.addCallback(self._send_states, sender)
        elif kind == "catchup":
            limit = max(1, min(int(request.get("limit", CATCHUP_BATCH)), CATCHUP_BATCH))
            d = deferToThreadPool(self.reactor, self.io_pool, self._replay, applied, limit)
            d.addCallback(self._send_replay, sender)
            d.addErrback(lambda f: self.log.failure("catch-up for {node} failed", f, node=node))

    def _replay(self, applied, limit):
        numbers = self.replica.missing_for(applied, limit + 1)
        if numbers is None:
            return None, False
        return [self.replica.journal.read(n) for n in numbers[:limit]], len(numbers) > limit

    def _send_replay(self, result, sender):
        records, more = result
        if records is None:
            self.router.send([sender, json.dumps({"type": "full-sync-needed"}).encode()])
            return
        for frames in records:
            self.router.send([sender] + frames)
        done = {"type": "caught-up", "more": more}
        self.router.send([sender, json.dumps(done).encode()])

    def _send_manifest(self, result, sender):
        rows, applied = result
        for start in range(0, len(rows), MANIFEST_BATCH):
            part = {"type": "manifest-part", "rows": rows[start:start + MANIFEST_BATCH]}
            self.router.send([sender, json.dumps(part).encode()])
        end = {"type": "manifest-end", "applied": applied}
        self.router.send([sender, json.dumps(end).encode()])

    def _send_states(self, states, sender):
        for state in states:
            if state is not None:
                self.router.send([sender] + encode_state(state))
        self.router.send([sender, json.dumps({"type": "fetch-end"}).encode()])

    # Full sync, as the asking side ------------------------------------------

    def _full_sync(self, upstream):
        """Start over from the upstream's manifest (Clone pattern: state, then updates)."""
        self.log.warn("{upstream} no longer has the journal this node needs: full sync",
                      upstream=upstream)
        self.syncing[upstream] = {"rows": [], "fetch": [], "applied": None}
        self._ask(upstream, {"type": "manifest"})

    def _ask(self, upstream, request):
        request = dict(request, node=self.replica.node)
        dict(self.upstreams)[upstream].send([json.dumps(request).encode()])

    def _full_sync_answer(self, head, frames, upstream):
        sync = self.syncing.get(upstream)
        if sync is None:
            return
        kind = head.get("type")
        if kind == "manifest-part":
            rows = head.get("rows")
            if isinstance(rows, list):
                sync["rows"].extend(rows)
        elif kind == "manifest-end":
            sync["applied"] = head.get("applied")
            d = deferToThreadPool(self.reactor, self.apply_pool, self._plan, sync["rows"])
            d.addCallback(self._fetch_next, upstream)
            d.addErrback(self._sync_failed, upstream)
        elif kind == "file":
            d = deferToThreadPool(self.reactor, self.apply_pool, self._install, frames)
            d.addErrback(self._sync_failed, upstream)
        elif kind == "fetch-end":
            d = deferToThreadPool(self.reactor, self.apply_pool, lambda: None)
            d.addCallback(lambda _: self._fetch_next(None, upstream))

    def _plan(self, rows):
        states = [state_from_row(row, self.replica.rules) for row in rows]
        return self.replica.wanted(states)

    def _install(self, frames):
        self.replica.install(decode_state(frames, self.replica.rules))

    def _fetch_next(self, wanted, upstream):
        sync = self.syncing.get(upstream)
        if sync is None:
            return
        if wanted is not None:
            sync["fetch"] = list(wanted)
        if sync["fetch"]:
            batch, sync["fetch"] = sync["fetch"][:FETCH_BATCH], sync["fetch"][FETCH_BATCH:]
            self._ask(upstream, {"type": "fetch", "paths": batch})
            return
        applied = sync["applied"]
        del self.syncing[upstream]
        if isinstance(applied, dict):
            d = deferToThreadPool(self.reactor, self.apply_pool, self.replica.finish_full_sync,
                                  {str(k): int(v) for k, v in applied.items()})
            d.addCallback(lambda _: self._full_sync_done(upstream))

    def _full_sync_done(self, upstream):
        self.log.info("full sync from {upstream} done", upstream=upstream)
        self.catching_up.discard(upstream)
        self._catch_up(upstream)

    def _sync_failed(self, failure, upstream):
        self.log.failure("full sync from {upstream} failed; will start over", failure,
                         upstream=upstream)
        self.syncing.pop(upstream, None)
        self.catching_up.discard(upstream)
