"""The catch-up and full-sync conversations of one node, as both sides.

``PeerSync`` speaks the sync protocol (``docs/replication.md``) through the
DEALER and ROUTER sockets the links own:

* asking each upstream: a catch-up request when a gap shows, asked again
  while the answer says there is more; a full sync (the manifest, fetches of
  what differs, then the manifest's sequences adopted) when the upstream's
  journal no longer reaches back far enough;
* answering downstream peers: journal messages for a catch-up, the manifest,
  fetched path states; their acknowledgements are recorded for trimming.

The replica is called in threads only: whatever changes the tree in the
apply pool, in order with live applies; reads for peers in the io pool.
Requests and answers are encoded and checked by ``sync_messages``.
"""

from dataclasses import dataclass, field

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from imagepipe.errors import InvalidMessage
from imagepipe.replication.messages import header
from imagepipe.replication.sync_messages import (
    MAX_FETCH_PATHS, MAX_MANIFEST_ROWS, PathState, SyncAnswer, SyncRequest, decode_answer,
    decode_request, decode_state, encode_answer, encode_request, encode_state)

# Records per catch-up answer: the asking node's reactor reads a whole answer
# in one go (txZMQ reads every queued message), so a batch is kept to about a
# millisecond of its time.
CATCHUP_BATCH = 50


@dataclass
class FullSync:
    """A full sync from one upstream, under way."""

    parts: list = field(default_factory=list)  # manifest-part frames, checked in a thread
    fetch: list = field(default_factory=list)  # paths still to fetch
    applied: dict | None = None  # the manifest's sequences, once its end has come


class PeerSync:
    """Both sides of the catch-up and full-sync conversations of one node.

    ``upstreams`` maps each upstream's publish endpoint to a callable that
    sends one message to its sync endpoint; ``reply`` sends one message
    through the ROUTER (the peer's identity frame first); ``deliver(frames,
    upstream)`` takes a replayed change the way a live one is taken.  A
    catch-up request still unanswered after ``timeout`` seconds no longer
    holds back the next one.
    """

    log = Logger()

    def __init__(self, reactor, replica, apply_pool, io_pool, upstreams, reply, deliver,
                 timeout):
        self.reactor = reactor
        self.replica = replica
        self.apply_pool = apply_pool
        self.io_pool = io_pool
        self.upstreams = upstreams
        self.reply = reply
        self.deliver = deliver
        self.timeout = timeout
        self.catching_up = {}  # upstream endpoint -> the timeout of its outstanding request
        self.syncing = {}  # upstream endpoint -> FullSync
        self.replayed = {}  # upstream endpoint -> messages replayed in this catch-up
        self.catchup_started = {}  # upstream endpoint -> when the catch-up began
        self.stopped = False

    def stop(self):
        """Ask no upstream for anything more (the links are stopping)."""
        self.stopped = True
        for upstream in list(self.catching_up):
            self._answered_or_gone(upstream)

    # Catch-up, as the asking side -------------------------------------------

    def catch_up(self, upstream):
        """Ask ``upstream`` for what this node lacks, unless already asking or syncing."""
        if upstream in self.catching_up or upstream in self.syncing or self.stopped:
            return
        self.catching_up[upstream] = self.reactor.callLater(self.timeout, self.catching_up.pop,
                                                            upstream, None)
        self.catchup_started.setdefault(upstream, self.reactor.seconds())
        self._ask(upstream, "catchup", applied=self.replica.applied(), limit=CATCHUP_BATCH)

    def _answered_or_gone(self, upstream):
        """The request to ``upstream`` is over: its timeout no longer runs."""
        timeout = self.catching_up.pop(upstream, None)
        if timeout is not None and timeout.active():
            timeout.cancel()

    def _ask(self, upstream, kind, **fields):
        request = SyncRequest(kind, self.replica.node, **fields)
        self.upstreams[upstream](encode_request(request))

    def answered(self, frames, upstream):
        """Take one message from ``upstream``'s sync endpoint: a change or an answer."""
        try:
            kind = header(frames).get("type")
        except InvalidMessage as error:
            self.log.warn("bad answer from {upstream}: {error}", upstream=upstream,
                          error=str(error))
            return
        if kind in ("store", "move", "delete"):
            self.replayed[upstream] = self.replayed.get(upstream, 0) + 1
            self.deliver(frames, upstream)
        elif kind == "file":
            if upstream in self.syncing:
                d = deferToThreadPool(self.reactor, self.apply_pool, self._install, frames)
                d.addErrback(self._sync_failed, upstream)
        elif kind == "manifest-part":
            # Checking a part's paths takes milliseconds: the apply thread does it.
            if upstream in self.syncing:
                self.syncing[upstream].parts.append(frames)
        else:
            try:
                answer = decode_answer(frames, self.replica.rules)
            except InvalidMessage as error:
                self.log.warn("bad answer from {upstream}: {error}", upstream=upstream,
                              error=str(error))
                if upstream in self.syncing:  # its end may never come now
                    self._start_over(upstream)
                return
            self._take(answer, upstream)

    def _take(self, answer, upstream):
        if answer.type == "caught-up":
            # The replayed changes are applied in the apply thread: once it has
            # run this no-op they are all in.
            d = deferToThreadPool(self.reactor, self.apply_pool, lambda: None)
            d.addCallback(lambda _: self._caught_up(upstream, answer.more))
        elif answer.type == "full-sync-needed":
            if upstream not in self.syncing:
                self._full_sync(upstream)
        elif upstream in self.syncing and answer.type == "manifest-end":
            sync = self.syncing[upstream]
            sync.applied = answer.applied_map
            d = deferToThreadPool(self.reactor, self.apply_pool, self._plan, sync.parts)
            d.addCallback(self._fetch_next, upstream)
            d.addErrback(self._sync_failed, upstream)
        elif upstream in self.syncing and answer.type == "fetch-end":
            # After the installs of the files before it, like caught-up.
            d = deferToThreadPool(self.reactor, self.apply_pool, lambda: None)
            d.addCallback(lambda _: self._fetch_next(None, upstream))

    def _caught_up(self, upstream, more):
        self._answered_or_gone(upstream)
        if more:
            self.catch_up(upstream)
            return
        replayed = self.replayed.pop(upstream, 0)
        started = self.catchup_started.pop(upstream, self.reactor.seconds())
        if replayed:
            self.log.info("caught up {count} messages from {upstream} in {seconds:.1f} s",
                          count=replayed, upstream=upstream,
                          seconds=self.reactor.seconds() - started)

    # Full sync, as the asking side ------------------------------------------

    def _full_sync(self, upstream):
        """Start over from the upstream's manifest (Clone pattern: state, then updates)."""
        self.log.warn("{upstream} no longer has the journal this node needs: full sync",
                      upstream=upstream)
        self.syncing[upstream] = FullSync()
        self._ask(upstream, "manifest")

    def _plan(self, parts):
        """In the apply thread: check the manifest, apply its winning tombstones,
        and return the paths to fetch."""
        states = [state for frames in parts
                  for state in decode_answer(frames, self.replica.rules).states]
        return self.replica.wanted(states)

    def _install(self, frames):
        self.replica.install(decode_state(frames, self.replica.rules))

    def _fetch_next(self, wanted, upstream):
        sync = self.syncing.get(upstream)
        if sync is None:
            return
        if wanted is not None:
            sync.fetch = list(wanted)
        if sync.fetch:
            batch, sync.fetch = sync.fetch[:MAX_FETCH_PATHS], sync.fetch[MAX_FETCH_PATHS:]
            self._ask(upstream, "fetch", paths=batch)
            return
        del self.syncing[upstream]
        if sync.applied is not None:
            d = deferToThreadPool(self.reactor, self.apply_pool, self.replica.finish_full_sync,
                                  sync.applied)
            d.addCallback(lambda _: self._full_sync_done(upstream))

    def _full_sync_done(self, upstream):
        self.log.info("full sync from {upstream} done", upstream=upstream)
        self._answered_or_gone(upstream)
        self.catch_up(upstream)

    def _sync_failed(self, failure, upstream):
        self.log.failure("full sync from {upstream} failed; will start over", failure,
                         upstream=upstream)
        self._start_over(upstream)

    def _start_over(self, upstream):
        """Drop the full sync from ``upstream``; the next gap asks, and syncs, again."""
        self.syncing.pop(upstream, None)
        self._answered_or_gone(upstream)

    # Answering downstream peers ---------------------------------------------

    def asked(self, frames):
        """Answer one request that came through the ROUTER (identity frame first)."""
        sender = frames[0]
        try:
            request = decode_request(frames[1:], self.replica.rules)
        except InvalidMessage as error:
            self.log.warn("dropped a malformed sync request: {error}", error=str(error))
            return
        if request.type == "ack":
            self.io_pool.callInThread(self.replica.record_peer, request.node,
                                      request.applied_map)
        elif request.type == "manifest":
            d = deferToThreadPool(self.reactor, self.io_pool, self._manifest)
            d.addCallback(self._send, sender)
        elif request.type == "fetch":
            d = deferToThreadPool(self.reactor, self.io_pool, self._states, request.paths)
            d.addCallback(self._send, sender)
        else:
            d = deferToThreadPool(self.reactor, self.io_pool, self._replay,
                                  request.applied_map, min(request.limit, CATCHUP_BATCH))
            d.addCallback(self._send, sender)
            d.addErrback(lambda f: self.log.failure("catch-up for {node} failed", f,
                                                    node=request.node))

    def _send(self, answers, sender):
        for frames in answers:
            self.reply([sender] + frames)

    def _replay(self, applied, limit):
        """In the io thread: up to ``limit`` journal messages above ``applied``, then caught-up."""
        numbers = self.replica.missing_for(applied, limit + 1)
        if numbers is None:
            return [encode_answer(SyncAnswer("full-sync-needed"))]
        records = [self.replica.journal.read(number) for number in numbers[:limit]]
        return records + [encode_answer(SyncAnswer("caught-up", more=len(numbers) > limit))]

    def _manifest(self):
        """In the io thread: the manifest in parts, then its end with the sequences."""
        rows, applied = self.replica.manifest()
        states = [PathState(path, hlc, origin, bool(deleted), sha256)
                  for path, hlc, origin, deleted, sha256 in rows]
        parts = [encode_answer(SyncAnswer("manifest-part",
                                          states=states[start:start + MAX_MANIFEST_ROWS]))
                 for start in range(0, len(states), MAX_MANIFEST_ROWS)]
        return parts + [encode_answer(SyncAnswer("manifest-end", applied=applied))]

    def _states(self, paths):
        """In the io thread: a ``file`` answer per known path, then fetch-end."""
        states = [self.replica.path_state(path) for path in paths]
        return ([encode_state(state) for state in states if state is not None]
                + [encode_answer(SyncAnswer("fetch-end"))])
