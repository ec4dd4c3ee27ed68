"""Ports and waiting: what every end-to-end test needs of the network and of time.

Standard library only: the benchmarks (``bench/common.py``) take their ports
from here too.
"""

import random
import socket
import time


def free_port():
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_pair():
    """A port P with P + 1 also free (publish and the sync endpoint beside it)."""
    while True:
        port = random.randint(20000, 60000)
        sockets = []
        try:
            for candidate in (port, port + 1):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


def wait_for(predicate, timeout=30.0, interval=0.02, what="condition"):
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def wait_listening(process, port, log, timeout=30.0, name="the server"):
    """Wait until ``port`` accepts connections; fail with ``log()`` if ``process`` exits first."""
    def listening():
        if process.poll() is not None:
            raise AssertionError(f"{name} exited ({process.returncode}):\n{log()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    wait_for(listening, timeout, what=f"{name} on port {port}")
