"""The worker pool: a service owning one lane of threads per kind of work.

A ``Lane`` is a ThreadPool and a bounded admission count: work is admitted
while fewer than ``threads + max_pending`` jobs are running or waiting;
beyond that ``submit`` raises ``Busy`` at once, so memory stays bounded
however many clients push.  A free thread goes to the waiting client with
the fewest jobs running, not to the oldest job.  The XML-RPC calls
(``writes``) and the on-the-fly renders (``renders``) each have a lane, so
reads, however many, never take a thread or a queue place from a write;
the result-cache lookups of on-the-fly requests (``lookups``) have a third,
so a hit never waits behind a render.  ``drain`` fires when no
lane has anything in flight, which is how SIGTERM lets running work finish.
"""

from collections import Counter, deque

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from imagepipe.errors import Busy

LOOKUP_THREADS = 2


class Lane:
    """Threads and an admission count for one kind of work."""

    def __init__(self, owner, what, threads, max_pending, settings, pool=None, fair=True):
        self.owner = owner  # the WorkerPool: its ``closing`` and its idle waiters
        self.fair = fair  # False: jobs go straight to the pool's queue, first come first served
        self.what = what  # "calls", "renders" or "lookups", for messages
        self.threads = threads
        self.max_pending = max_pending
        self.settings = settings  # the names of the two sizes, for messages
        self.pool = pool or ThreadPool(threads, threads, name=f"imagepipe-{what}")
        self.stopped = False  # the pool is stopping: nothing more is handed to it
        self.in_flight = 0  # admitted: running or waiting
        self.running = 0  # handed to a thread
        self._waiting = {}  # client -> deque of (Deferred, function, args), oldest first
        self._running = Counter()  # client -> its jobs on a thread
        self._served = {}  # client -> when it last got a thread (a dispatch count)
        self._dispatched = 0

    @property
    def capacity(self):
        """How much work may be admitted at once."""
        return self.threads + self.max_pending

    def resize(self, threads, max_pending):
        self.threads = threads
        self.max_pending = max_pending
        self.pool.adjustPoolsize(threads, threads)
        self._dispatch()

    def admit(self, waiting=0):
        """Raise ``Busy`` unless one more job fits beside ``waiting`` held elsewhere."""
        if self.owner.closing:
            raise Busy("server shutting down; retry on another node or later")
        if self.in_flight + waiting >= self.capacity:
            threads, pending = self.settings
            raise Busy(f"server busy: {self.in_flight + waiting} {self.what} in progress "
                       f"({threads} {self.threads} + {pending} {self.max_pending}); "
                       f"retry later")

    def submit(self, function, *args, client=None):
        """Run ``function(*args)`` in this lane; a Deferred of its result.

        Raises ``Busy``.  In a fair lane a free thread takes the next job of
        the waiting ``client`` (an address, or None) with the fewest jobs
        running, the one served longest ago among equals: a client with many
        jobs queued cannot make another's wait behind all of them.  In a lane
        that is not fair, jobs wait in the pool's own queue, oldest first.
        """
        self.admit()
        self.in_flight += 1
        if not self.fair:
            d = deferToThreadPool(self.owner.reactor, self.pool, function, *args)
            d.addBoth(self._done)
            return d
        d = defer.Deferred()
        self._waiting.setdefault(client, deque()).append((d, function, args))
        self._dispatch()
        d.addBoth(self._done)
        return d

    def stop(self):
        """Fail every job still waiting for a thread: the pool is about to stop."""
        self.stopped = True
        waiting, self._waiting = self._waiting, {}
        for queue in waiting.values():
            for d, _, _ in queue:
                d.errback(Busy("server shutting down; retry on another node or later"))

    def _dispatch(self):
        while self.running < self.threads and self._waiting and not self.stopped:
            client = min(self._waiting, key=self._turn)
            queue = self._waiting[client]
            d, function, args = queue.popleft()
            if not queue:
                del self._waiting[client]
            self.running += 1
            self._running[client] += 1
            self._served[client] = self._dispatched = self._dispatched + 1
            ran = deferToThreadPool(self.owner.reactor, self.pool, function, *args)
            ran.addBoth(self._ran, client)
            ran.chainDeferred(d)

    def _turn(self, client):
        return self._running[client], self._served.get(client, 0)

    def _ran(self, result, client):
        self.running -= 1
        self._running[client] -= 1
        if not self._running[client]:
            del self._running[client]
            if client not in self._waiting:
                del self._served[client]
        self._dispatch()
        return result

    def _done(self, result):
        self.in_flight -= 1
        self.owner.settled()
        return result


class WorkerPool(Service):
    """Runs blocking image and file work off the reactor, writes and renders apart."""

    def __init__(self, reactor, threads, max_pending, render_threads=None,
                 max_render_pending=None, max_lookups=1000, helpers=()):
        self.reactor = reactor
        self.closing = False  # set on shutdown: admit nothing new
        self.writes = Lane(self, "calls", threads, max_pending,
                           ("io_threads", "max_pending"))
        self.renders = Lane(self, "renders", render_threads or threads,
                            max_render_pending if max_render_pending is not None
                            else max_pending, ("render_threads", "max_render_pending"))
        # Result-cache lookups of on-the-fly requests: short, never behind a render.
        # Their threads take jobs from the pool's queue directly: handing each
        # one over from the reactor would hold the threads idle while it is busy.
        self.lookups = Lane(self, "lookups", LOOKUP_THREADS, max_lookups,
                            ("lookup threads", "max_connections"), fair=False)
        self.lanes = (self.writes, self.renders, self.lookups)
        # Objects with start() and close() the threads lean on (render processes):
        # started with the pool (after twistd daemonized), closed before it stops.
        self.helpers = tuple(helpers)
        self._idle = []

    @property
    def in_flight(self):
        return sum(lane.in_flight for lane in self.lanes)

    def startService(self):
        Service.startService(self)
        for lane in self.lanes:
            lane.pool.start()
        for helper in self.helpers:
            helper.start()

    def stopService(self):
        Service.stopService(self)
        for helper in self.helpers:  # first: a thread waiting on a closed helper wakes up
            helper.close()
        for lane in self.lanes:
            lane.stop()
            lane.pool.stop()

    def reload(self, config):
        """Take a reloaded config's XML-RPC threads and queue (the other lanes need a restart)."""
        self.writes.resize(config.images.io_threads, config.images.max_pending)

    def settled(self):
        """A job ended: wake ``drain`` waiters once nothing is in flight."""
        if self.in_flight == 0:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def drain(self):
        """A Deferred that fires once no job is in flight in any lane."""
        if self.in_flight == 0:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        return d
