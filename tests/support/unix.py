"""HTTP and XML-RPC clients over a unix socket (a node listening on ``unix:...``).

Apart from ``net`` because it imports ``http.client``: the benchmarks import
``net`` from a directory whose ``http.py`` would stand in for the standard one.
"""

import http.client
import socket
import xmlrpc.client


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to a server listening on the unix socket ``socket_path``."""

    def __init__(self, socket_path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(socket_path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over a unix socket: ``ServerProxy("http://localhost/", transport=...)``."""

    def __init__(self, socket_path):
        super().__init__()
        self.socket_path = socket_path

    def make_connection(self, host):
        return UnixHTTPConnection(self.socket_path)


def unix_accepts(socket_path):
    """True once something accepts connections on the unix socket ``socket_path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(str(socket_path)) == 0
