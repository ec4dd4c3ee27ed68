"""Scripted HTTP origins for tests: stdlib servers in threads of the test process, on
loopback, each path answered by a route (a function of the request handler)."""

import select
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMAGE = b"\xff\xd8\xff\xe0 not really a JPEG, but bytes are bytes"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup of the address
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.origin.connections += 1

    def do_GET(self):
        origin = self.server.origin
        origin.seen.append((self.path, self.headers.get("Host")))
        origin.routes.get(self.path, status(404))(self)

    def log_message(self, *args):
        pass


class Origin:
    """An HTTP origin on a loopback address; ``routes`` maps paths to answers."""

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.routes = {}
        self.seen = []  # (path, Host header) of every request
        self.connections = 0
        self.cut = threading.Event()  # the client dropped a connection mid-answer
        self.release = threading.Event()  # ends the stalled answers
        self.server = _Server((host, port), _Handler)
        self.server.origin = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server.server_address[1]

    def url(self, host=None):
        return f"http://{host or self.host}:{self.port}/"

    def paths(self):
        return [path for path, _ in self.seen]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def send(handler, code, body=b"", headers=()):
    handler.send_response(code)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def image(body=IMAGE, *headers):
    return lambda handler: send(handler, 200, body, headers)


def status(code):
    return lambda handler: send(handler, code, b"an error page\n")


def redirect(location, code=302):
    return lambda handler: send(handler, code, headers=[("Location", location)])


def readable(stream, seconds):
    """True once ``stream`` has data or end of file (poll: no limit on descriptor numbers)."""
    poller = select.poll()
    poller.register(stream, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def stall(handler):
    """Answer nothing; note when the client drops the connection."""
    origin = handler.server.origin
    handler.close_connection = True
    while not origin.release.is_set():
        if readable(handler.connection, 0.05):
            try:
                dropped = handler.connection.recv(1) == b""
            except ConnectionResetError:
                dropped = True
            if dropped:
                origin.cut.set()
            return


def dribble(handler):
    """A declared body of 1000 bytes, sent one byte at a time, slowly."""
    origin = handler.server.origin
    handler.close_connection = True
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    try:
        while not origin.release.wait(0.05):
            handler.wfile.write(b"x")
    except OSError:
        origin.cut.set()


def endless(head, chunked=False):
    """``head`` then body bytes until the client drops the connection (or 256 MiB)."""
    block = b"x" * 65536
    if chunked:
        block = b"%x\r\n%s\r\n" % (len(block), block)

    def route(handler):
        handler.close_connection = True
        try:
            handler.wfile.write(head)
            for _ in range(4096):
                handler.wfile.write(block)
        except OSError:
            handler.server.origin.cut.set()
    return route


def delayed(seconds, route):
    """``route``, answered after ``seconds``."""
    def answer(handler):
        time.sleep(seconds)
        route(handler)
    return answer
