"""Reads never lock out writes: on-the-fly renders and XML-RPC calls have separate
capacity, and one client address may hold only so many renders in flight."""

import dataclasses
import ipaddress
import json
import threading
import xmlrpc.client
from collections import Counter

import pytest

from support.net import wait_for
from support.origins import image, stall
from support.samples import photo, picture
from support.server import b64
from imagepipe.config import ClientLimits
from test_http import get


def status(node):
    return json.loads(get(node, "/status").body)


def test_a_flood_of_misses_never_refuses_a_write(make_server):
    # The same small write capacity that a shared pool used to give up to renders.
    node = make_server(images__io_threads=1, images__max_pending=1,
                       http__cache_max_bytes=0)
    node.root.joinpath("big.jpg").write_bytes(photo(2000, 1125))
    node.start()
    stop = threading.Event()
    reads = Counter()

    def flood(loop):
        size = 0
        while not stop.is_set():
            size += 1
            reads[get(node, f"/r/w:{1500 + loop}/h:{1500 + size}/m:fill/e:1/big.jpg").status] += 1

    loops = [threading.Thread(target=flood, args=(i,)) for i in range(16)]
    for loop in loops:
        loop.start()
    outcomes = []
    try:
        wait_for(lambda: reads[200] + reads[429] >= 4, timeout=60, what="the flood under way")
        proxy = node.proxy()
        for index in range(8):
            try:
                outcomes.append(proxy.store_image(b64(picture(120, 80)), f"w/{index}.jpg", "",
                                                  [60, 40]))
            except xmlrpc.client.Fault as fault:
                outcomes.append(fault.faultCode)
    finally:
        stop.set()
        for loop in loops:
            loop.join()
    assert reads[429] > 0, reads  # the reads were held to their bounds all along
    assert set(reads) <= {200, 429}, reads
    assert outcomes == ["OK"] * 8
    assert (node.root / "w" / "7.jpg").is_file()


@pytest.fixture
def held(make_server, make_origin):
    """A node reading from an origin whose /held/* answers wait for ``origin.release``."""
    origin = make_origin()
    for name in ("a1", "a2", "a3"):
        origin.routes[f"/held/{name}.jpg"] = stall
    origin.routes["/free/b.jpg"] = image(picture(40, 30))

    def make(**settings):
        node = make_server(http__max_client_renders=2, http__cache_max_bytes=0,
                           http__native={"source": "origins"},
                           http__origins={"master": origin.url(), "allow": "127.0.0.1/32",
                                          "read_timeout": "20"},
                           **settings)
        return node.start(), origin
    return make


def hold(node, origin, paths_and_addresses):
    """Start a request per (path, X-Real-IP) in a thread; wait until the origin has each."""
    answers = {}

    def send(path, address):
        answers[path] = get(node, path, **({"X-Real-IP": address} if address else {}))

    threads = [threading.Thread(target=send, args=pair) for pair in paths_and_addresses]
    for thread in threads:
        thread.start()
    wanted = {path.split("/w:10", 1)[1] for path, _ in paths_and_addresses}
    wait_for(lambda: wanted <= set(origin.paths()), what="the fetches at the origin")
    return threads, answers


def test_one_client_past_max_client_renders_gets_429_with_retry_after(held):
    node, origin = held(network__trusted_proxies="127.0.0.1",
                        network__client_address_header="x-real-ip")
    threads, answers = hold(node, origin, [("/r/w:10/held/a1.jpg", "10.0.0.1"),
                                           ("/r/w:10/held/a2.jpg", "10.0.0.1")])
    try:
        refused = get(node, "/r/w:10/held/a3.jpg", **{"X-Real-IP": "10.0.0.1"})
        assert refused.status == 429
        assert refused.getheader("Retry-After") == "1"
        assert b"max_client_renders (2)" in refused.body
        assert "/held/a3.jpg" not in origin.paths()  # refused before any fetch
        # Another client behind the same proxy, and the proxy's own requests, are served.
        assert get(node, "/r/w:10/free/b.jpg", **{"X-Real-IP": "10.0.0.2"}).status == 200
        assert get(node, "/r/w:20/free/b.jpg").status == 200
        assert status(node)["renders"]["clients"] == 1
    finally:
        origin.release.set()
        for thread in threads:
            thread.join()
    assert {answer.status for answer in answers.values()} == {502}
    origin.routes["/held/a3.jpg"] = image(picture(40, 30))
    assert get(node, "/r/w:10/held/a3.jpg", **{"X-Real-IP": "10.0.0.1"}).status == 200
    assert status(node)["renders"]["clients"] == 0


def test_forwarding_headers_count_only_from_trusted_proxies(held):
    node, origin = held()
    threads, _ = hold(node, origin, [("/r/w:10/held/a1.jpg", "10.0.0.1"),
                                     ("/r/w:10/held/a2.jpg", "10.0.0.2")])
    try:
        # Without trusted_proxies the header is the client's own claim: ignored.
        refused = get(node, "/r/w:10/free/b.jpg", **{"X-Real-IP": "10.0.0.3",
                                                     "X-Forwarded-For": "10.0.0.4"})
        assert refused.status == 429 and b"max_client_renders (2)" in refused.body
    finally:
        origin.release.set()
        for thread in threads:
            thread.join()


def test_status_reports_each_lane(make_server):
    node = make_server(images__io_threads=3, images__max_pending=5, http__render_threads=2,
                       http__max_render_pending=4).start()
    lanes = status(node)
    assert (lanes["threads"], lanes["capacity"], lanes["in_flight"]) == (3, 8, 0)
    assert lanes["renders"] == {"threads": 2, "capacity": 6, "in_flight": 0, "fetching": 0,
                                "clients": 0, "max_client_renders": 6}
    assert lanes["lookups"] == {"threads": 2, "in_flight": 0}


PROXIES = ClientLimits(exempt=(ipaddress.ip_network("127.0.0.1"),
                               ipaddress.ip_network("10.1.0.0/16")))
REAL_IP = dataclasses.replace(PROXIES, header="x-real-ip")


@pytest.mark.parametrize("limits, host, real_ip, forwarded, client", [
    (PROXIES, "192.0.2.7", "10.0.0.1", "10.0.0.2", "192.0.2.7"),  # not a proxy: ignored
    (PROXIES, "127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"),  # X-Forwarded-For only
    (PROXIES, "127.0.0.1", "10.0.0.1", None, "127.0.0.1"),
    (PROXIES, "127.0.0.1", None, "198.51.100.1, 10.0.0.2", "10.0.0.2"),  # the rightmost
    (PROXIES, "127.0.0.1", None, "198.51.100.1, 10.0.0.2, 10.1.4.4", "10.0.0.2"),
    (PROXIES, "127.0.0.1", None, "not an address", "127.0.0.1"),  # nothing usable
    (PROXIES, None, None, None, None),  # a unix socket, no header: not counted
    (PROXIES, None, None, "10.0.0.1", "10.0.0.1"),  # a unix socket behind nginx
    (REAL_IP, "127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"),  # X-Real-IP only
    (REAL_IP, "127.0.0.1", " 2001:db8::1 ", None, "2001:db8::1"),
    (REAL_IP, "127.0.0.1", "127.0.0.1", None, "127.0.0.1"),  # a proxy's own: the proxy
    (REAL_IP, "127.0.0.1", None, "10.0.0.2", "127.0.0.1"),
])
def test_the_client_of_a_request(limits, host, real_ip, forwarded, client):
    assert limits.client(host, real_ip, forwarded) == client
