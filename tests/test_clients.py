"""Slow and greedy clients against a real node: each is answered and dropped in
bounded time, and the node keeps serving everyone else."""

import http.client
import json
import socket
import time
import xmlrpc.client

import pytest

from support.net import wait_for
from support.samples import picture
from support.server import b64


def connect(node):
    return socket.create_connection(("127.0.0.1", node.port), timeout=30)


def answer_of(sock):
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def trickle(sock, data, interval, until):
    """Send ``data`` a byte every ``interval`` seconds until the peer answers or ``until``."""
    sock.settimeout(interval)
    for byte in data:
        if time.monotonic() > until:
            return b""
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(65536)
            return answer + answer_of_quietly(sock)
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b""
    return b""


def answer_of_quietly(sock):
    sock.settimeout(10)
    try:
        return answer_of(sock)
    except (socket.timeout, ConnectionResetError):
        return b""


def serving(node):
    assert node.proxy().store_image(b64(picture(20, 20)), "ok/x.jpg", "", [10, 10]) == "OK"


@pytest.mark.parametrize("settings,sent,trickled,message", [
    ({"network__head_timeout": 2}, b"", b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200,
     b"request head not complete within head_timeout (2 s)"),
    ({"network__body_timeout": 2, "network__body_min_rate": "1KiB"},
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 8000000\r\n\r\n",
     b"<" * 100, b"request body arriving slower than body_min_rate (1024 bytes/s"),
], ids=["head-a-byte-at-a-time", "stalled-body"])
def test_a_client_too_slow_is_answered_408_and_dropped(make_server, settings, sent, trickled,
                                                        message):
    node = make_server(**settings).start()
    with connect(node) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        answer = trickle(sock, trickled, 0.25, started + 15)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert message in answer
    assert 1.5 < took < 6
    serving(node)


def test_a_steady_upload_slower_than_the_timeout_alone_still_completes(make_server):
    node = make_server(network__body_timeout=1, network__body_min_rate="64KiB").start()
    body = xmlrpc.client.dumps((b64(picture(600, 400, fmt="PNG")), "slow/x.png"),
                               "store_image").encode()
    with connect(node) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 32 << 10):  # 32 KiB every 0.25 s: 128 KiB/s
            sock.sendall(body[start:start + (32 << 10)])
            time.sleep(0.25)
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"<string>OK</string>" in answer


def hold(node, count):
    """``count`` idle connections, once the node counts every one of them."""
    held = [connect(node) for _ in range(count)]
    wait_for(lambda: status(node).get("connections") == count + 1,  # + the /status request
             what=f"{count} connections to be counted")
    return held


def answer_past(node, count):
    """The answer to one connection more than ``count`` open ones, all closed after."""
    held = hold(node, count - 1) + [connect(node)]
    try:
        with connect(node) as extra:
            return answer_of(extra)
    finally:
        for sock in held:
            sock.close()


def test_connections_past_the_total_are_answered_503(make_server):
    node = make_server(network__max_connections=4, network__max_client_connections=100).start()
    answer = answer_past(node, 4)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 1\r\n" in answer and b"max_connections (4) are open" in answer
    wait_for(lambda: status(node).get("connections") == 1, what="the slots to be free again")
    serving(node)


def test_one_address_past_its_share_is_answered_429(make_server):
    node = make_server(network__max_client_connections=3).start()
    answer = answer_past(node, 3)
    assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"max_client_connections (3)" in answer and b"Retry-After: 1\r\n" in answer


def test_a_trusted_proxy_counts_only_toward_the_total(make_server):
    node = make_server(network__max_client_connections=2,
                       network__trusted_proxies="127.0.0.1").start()
    held = hold(node, 5)
    serving(node)  # one more connection, from the same address
    for sock in held:
        sock.close()


def status(node):
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    connection.request("GET", "/status")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    # Refused while an earlier /status connection is still counted: nothing to read yet.
    return json.loads(body) if response.status == 200 else {}


def test_bodies_in_flight_past_the_budget_are_answered_503(make_server):
    node = make_server(network__max_body_bytes_in_flight="1MiB").start()
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 700000\r\n\r\n")
    with connect(node) as first, connect(node) as second:
        first.sendall(head + b"<" * 1000)  # holds 700,000 bytes of the budget
        wait_for(lambda: status(node).get("body_bytes_in_flight") == 700000,
                 what="the first body to hold its share")
        second.sendall(head)
        answer = answer_of(second)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"max_body_bytes_in_flight (1048576)" in answer and b"Retry-After: 5" in answer
    serving(node)  # the budget is free again once the first connection went


@pytest.mark.parametrize("request_bytes,status,phrase", [
    (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n", 414, b"URI Too Long"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n", 431,
     b"Request Header Fields Too Large"),
])
def test_lines_too_long_to_read_are_answered(server, request_bytes, status, phrase):
    with connect(server) as sock:
        sock.sendall(request_bytes)
        answer = answer_of_quietly(sock)
    assert answer.startswith(b"HTTP/1.1 %d %s\r\n" % (status, phrase))


def test_a_body_declared_too_large_is_answered_and_the_connection_closed(server):
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     b"Content-Length: 100000000000\r\n\r\n")
        started = time.monotonic()
        answer = answer_of(sock)  # returns once the server closes
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"Connection: close" in answer and took < 2
