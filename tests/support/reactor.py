"""A memory reactor for the listening code: ports that say when they stop, ports taken."""

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock


class Reactor(MemoryReactorClock):
    """``MemoryReactorClock`` that refuses the TCP ports in ``taken`` and records stops."""

    def __init__(self, taken=()):
        super().__init__()
        self.taken = set(taken)
        self.stopped = []  # TCP port numbers whose listening port was stopped

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        listening = super().listenTCP(port, factory, backlog, interface)
        listening.stopListening = lambda: self.stopped.append(port)
        return listening
