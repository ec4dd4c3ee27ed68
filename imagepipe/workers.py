"""The worker pool: a service owning a ThreadPool and a bounded admission count.

Calls are admitted while fewer than ``threads + max_pending`` are running or
waiting; beyond that ``submit`` raises ``Busy`` at once, so memory stays
bounded however many clients push.  ``drain`` fires when nothing is in
flight, which is how SIGTERM lets running calls finish.
"""

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from imagepipe.errors import Busy


class WorkerPool(Service):
    """Runs blocking image and file work off the reactor, with a bounded queue."""

    def __init__(self, reactor, threads, max_pending, pool=None):
        self.reactor = reactor
        self.threads = threads
        self.max_pending = max_pending
        self.pool = pool or ThreadPool(threads, threads, name="imagepipe-io")
        self.in_flight = 0
        self.closing = False  # set on shutdown: admit nothing new
        self.starters = []  # called when the service starts (after twistd daemonized)
        self.closers = []  # called on stop, before the threads are joined
        self._idle = []

    def startService(self):
        Service.startService(self)
        self.pool.start()
        for start in self.starters:
            start()

    def stopService(self):
        Service.stopService(self)
        for close in self.closers:  # first: a thread waiting on a closed helper wakes up
            close()
        self.pool.stop()

    def resize(self, threads, max_pending):
        """Apply new sizes (on reload)."""
        self.threads = threads
        self.max_pending = max_pending
        self.pool.adjustPoolsize(threads, threads)

    @property
    def capacity(self):
        """How many calls may be admitted at once."""
        return self.threads + self.max_pending

    def admit(self, waiting=0):
        """Raise ``Busy`` unless one more call fits beside ``waiting`` held elsewhere."""
        if self.closing:
            raise Busy("server shutting down; retry on another node or later")
        if self.in_flight + waiting >= self.capacity:
            raise Busy(f"server busy: {self.in_flight + waiting} calls in progress "
                       f"(io_threads {self.threads} + max_pending {self.max_pending}); "
                       f"retry later")

    def submit(self, function, *args, **kwargs):
        """Run ``function`` in the pool; a Deferred of its result.  Raises ``Busy``."""
        self.admit()
        self.in_flight += 1
        d = deferToThreadPool(self.reactor, self.pool, function, *args, **kwargs)
        d.addBoth(self._done)
        return d

    def _done(self, result):
        self.in_flight -= 1
        if self.in_flight == 0:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)
        return result

    def drain(self):
        """A Deferred that fires once no call is in flight."""
        if self.in_flight == 0:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        return d
