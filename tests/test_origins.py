"""Fetching sources from HTTP origins: the address guard, the settings, and real
transfers against scripted origins.

The origins are stdlib HTTP servers in threads of this process, on loopback
addresses.  The code under test runs on a real reactor in a child process
(this file run as a script): each request is one JSON line on its stdin,
each answer one JSON line on its stdout.
"""

import hashlib
import json
import socket
import subprocess
import sys

import pytest

from imagepipe.web.origins.guard import refused_address
from imagepipe.web.origins.settings import OriginSettings
from support.origins import IMAGE, dribble, endless, image, readable, redirect, stall, status

QUICK = 0.3  # seconds, for the timeout tests
LIMIT = 10_000  # max_bytes for the size tests


# The address guard ------------------------------------------------------------

@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"),
    ("127.254.3.4", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("203.0.113.9", "reserved"),
    ("2001:db8::1", "reserved"),
    ("2001::1", "reserved"),  # Teredo
    ("100::1", "reserved"),
    ("4000::1", "reserved"),  # not global unicast
    ("64:ff9b:1::a00:1", "reserved"),  # local-use NAT64
])
def test_refused_address_names_the_range(address, reason):
    assert reason in refused_address(address)


@pytest.mark.parametrize("address, reason", [
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:100.64.0.1", "CGNAT"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("::10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"),  # 6to4
    ("2002:a00:1::1", "private"),
    ("2002:a9fe:a9fe::", "link-local"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64
    ("64:ff9b::a00:1", "private"),
    ("64:ff9b::e000:1", "multicast"),
])
def test_refused_address_looks_inside_ipv6_forms_of_ipv4(address, reason):
    answer = refused_address(address)
    assert reason in answer
    assert "inside an IPv6 address" in answer


@pytest.mark.parametrize("address", [
    "93.184.216.34",
    "8.8.8.8",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "2606:2800:220:1:248:1893:25c8:1946",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",
    "64:ff9b::5db8:d822",
])
def test_public_addresses_are_not_refused(address):
    assert refused_address(address) is None


def test_refused_address_reason_does_not_show_the_address():
    assert "10.9.8.7" not in refused_address("::ffff:10.9.8.7")
    assert "10.9.8.7" not in refused_address("10.9.8.7")


def test_allow_by_network():
    assert refused_address("10.1.2.3", ("10.0.0.0/8",)) is None
    assert refused_address("11.0.0.1", ("10.0.0.0/8",)) is None  # public anyway
    assert "private" in refused_address("192.168.0.1", ("10.0.0.0/8",))


def test_allow_by_single_address():
    assert refused_address("127.0.0.1", ("127.0.0.1/32",)) is None
    assert refused_address("127.0.0.1", ("127.0.0.1",)) is None
    assert "loopback" in refused_address("127.0.0.2", ("127.0.0.1/32",))


def test_allow_by_network_covers_the_ipv4_inside_an_ipv6_address():
    assert refused_address("::ffff:127.0.0.1", ("127.0.0.0/8",)) is None


def test_allow_by_ipv6_network():
    assert refused_address("fd00::5", ("fd00::/8",)) is None
    assert "private" in refused_address("fc00::5", ("fd00::/8",))


def test_allow_by_host_name_ignoring_case_and_final_dot():
    allow = ("media.internal",)
    assert refused_address("10.0.0.7", allow, host="media.internal") is None
    assert refused_address("127.0.0.1", allow, host="MEDIA.Internal.") is None
    assert "private" in refused_address("10.0.0.7", allow, host="other.internal")
    assert "private" in refused_address("10.0.0.7", allow)


# The settings --------------------------------------------------------------------

def test_settings_defaults():
    settings = OriginSettings("http://img.example.com/originals/")
    assert settings.fallbacks == ()
    assert settings.allow == ()
    assert settings.max_bytes == 50 * 1024 * 1024
    assert settings.max_redirects == 3


@pytest.mark.parametrize("master", [
    "ftp://img.example.com/", "file:///etc/", "img.example.com/originals/", "http:///x/",
    "http://img.example.com:99999/", "http://user:secret@img.example.com/",
    "http://img.example.com/?q=1", "http://bücher.example/", 42,
])
def test_settings_refuse_a_bad_master(master):
    with pytest.raises(ValueError, match="^master: "):
        OriginSettings(master)


def test_settings_name_the_bad_fallback():
    with pytest.raises(ValueError, match=r"^fallbacks\[1\]: "):
        OriginSettings("http://a.example/", fallbacks=("http://b.example/", "gopher://c/"))


def test_settings_want_tuples():
    with pytest.raises(ValueError, match="^fallbacks: "):
        OriginSettings("http://a.example/", fallbacks=["http://b.example/"])
    with pytest.raises(ValueError, match="^allow: "):
        OriginSettings("http://a.example/", allow=["10.0.0.0/8"])


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.256", "media_internal", "a..b", ""])
def test_settings_refuse_a_bad_allow_entry(entry):
    with pytest.raises(ValueError, match="^allow: "):
        OriginSettings("http://a.example/", allow=(entry,))


@pytest.mark.parametrize("field, value", [
    ("connect_timeout", 0), ("connect_timeout", -1.0), ("read_timeout", True),
    ("read_timeout", "10"), ("max_bytes", 0), ("max_bytes", 1.5), ("max_redirects", -1),
    ("user_agent", "imagepipe\r\nX-Evil: 1"), ("user_agent", 7),
])
def test_settings_name_a_bad_value(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        OriginSettings("http://a.example/", **{field: value})


def test_https_is_accepted():
    assert OriginSettings("https://img.example.com/").master == "https://img.example.com/"


def backlogged_port():
    """A listening port whose accept queue is full: a new connection never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filling = [listener]
    while True:  # until a connection waits: the queue is full
        client = socket.socket()
        client.settimeout(0.1)
        filling.append(client)
        try:
            client.connect(listener.getsockname())
        except (TimeoutError, socket.timeout):
            return listener.getsockname()[1], filling


# The code under test, in a child process with a real reactor -------------------

class Driver:
    """The child process: ``fetch`` sends one request and returns its outcomes."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.requests = 0

    def fetch(self, *sources, hosts=None, **settings):
        """The outcome of fetching each source at once with one ``HttpOrigins``."""
        self.requests += 1
        settings.setdefault("allow", ("127.0.0.1/32",))
        request = {"id": self.requests, "settings": settings, "sources": sources,
                   "hosts": hosts}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        while True:  # an answer to an earlier request that timed out is skipped
            if not readable(self.process.stdout, 30):
                raise AssertionError("the driver did not answer within 30 s")
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the driver exited ({self.process.wait()})")
            answer = json.loads(line)
            if answer["id"] == self.requests:
                return answer["outcomes"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture(scope="module")
def driver():
    child = Driver()
    yield child
    child.close()


def fetched(outcome):
    assert "error" not in outcome, outcome
    return outcome["data"].encode("latin-1")


def failed(outcome, kind):
    assert outcome.get("error") == kind, outcome
    return outcome["message"]


# Transfers -------------------------------------------------------------------------

def test_fetch_gives_the_bytes_and_the_etag_as_version(driver, origin):
    origin.routes["/photos/cat.jpg"] = image(
        IMAGE, ("ETag", '"v1"'), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"))
    [outcome] = driver.fetch("photos/cat.jpg", master=origin.url())
    assert fetched(outcome) == IMAGE
    assert outcome["version"] == '"v1"'
    assert outcome["modified"] == 784111777.0


def test_version_falls_back_to_last_modified_then_a_digest(driver, origin):
    origin.routes["/dated.jpg"] = image(IMAGE, ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"))
    origin.routes["/plain.jpg"] = image(IMAGE)
    dated, plain = driver.fetch("dated.jpg", "plain.jpg", master=origin.url())
    assert dated["version"] == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert plain["version"] and plain["version"] in hashlib.sha256(IMAGE).hexdigest()
    assert plain["modified"] is None


def test_source_segments_are_percent_quoted_under_the_base(driver, origin):
    origin.routes["/originals/a%20b/%C3%BC%23%3F.jpg"] = image()
    [outcome] = driver.fetch("a b/ü#?.jpg", master=origin.url() + "originals")
    assert fetched(outcome) == IMAGE


def test_missing_on_the_master_is_served_by_a_fallback(driver, make_origin):
    master, fallback = make_origin(), make_origin()
    fallback.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=master.url(), fallbacks=(fallback.url(),))
    assert fetched(outcome) == IMAGE
    assert master.paths() == ["/cat.jpg"]


def test_missing_everywhere_is_source_missing(driver, make_origin):
    master, first, second = make_origin(), make_origin(), make_origin()
    second.routes["/cat.jpg"] = status(410)
    [outcome] = driver.fetch("cat.jpg", master=master.url(),
                             fallbacks=(first.url(), second.url()))
    failed(outcome, "SourceMissing")
    assert first.paths() == second.paths() == ["/cat.jpg"]


def test_missing_on_the_only_origin_is_source_missing(driver, origin):
    [outcome] = driver.fetch("cat.jpg", master=origin.url())
    assert "404" in failed(outcome, "SourceMissing")


def test_a_failing_master_is_replaced_by_a_fallback(driver, make_origin):
    master, fallback = make_origin(), make_origin()
    master.routes["/cat.jpg"] = status(500)
    fallback.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=master.url(), fallbacks=(fallback.url(),))
    assert fetched(outcome) == IMAGE


def test_an_error_is_reported_rather_than_a_miss(driver, make_origin):
    master, fallback = make_origin(), make_origin()
    fallback.routes["/cat.jpg"] = status(503)
    [outcome] = driver.fetch("cat.jpg", master=master.url(), fallbacks=(fallback.url(),))
    assert "origin 127.0.0.1: answered 503" == failed(outcome, "OriginError")


def test_an_image_over_max_bytes_on_the_master_is_final(driver, make_origin):
    master, fallback = make_origin(), make_origin()
    master.routes["/cat.jpg"] = image(b"x" * (LIMIT + 1))
    fallback.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=master.url(), fallbacks=(fallback.url(),),
                             max_bytes=LIMIT)
    failed(outcome, "SourceTooLarge")
    assert fallback.seen == []


def test_the_first_fallback_to_answer_wins_and_the_others_are_dropped(driver, make_origin):
    master, slow, quick = make_origin(), make_origin(), make_origin()
    slow.routes["/cat.jpg"] = stall
    quick.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=master.url(),
                             fallbacks=(slow.url(), quick.url()), read_timeout=10.0)
    assert fetched(outcome) == IMAGE
    # Under load the quick one can win before the slow one is even asked.
    assert slow.cut.wait(5) or not slow.paths(), "the losing fallback's connection stayed open"
    assert outcome["seconds"] < 5


def test_concurrent_fetches_of_a_source_share_one_request(driver, origin):
    origin.routes["/cat.jpg"] = image()
    first, second = driver.fetch("cat.jpg", "cat.jpg", master=origin.url())
    assert fetched(first) == fetched(second) == IMAGE
    assert origin.paths() == ["/cat.jpg"]


def test_a_silent_origin_times_out_after_read_timeout(driver, origin):
    origin.routes["/cat.jpg"] = stall
    [outcome] = driver.fetch("cat.jpg", master=origin.url(), read_timeout=QUICK)
    assert "read_timeout (0.3 s)" in failed(outcome, "OriginTimeout")
    assert QUICK <= outcome["seconds"] < QUICK + 2
    assert origin.cut.wait(5)


def test_read_timeout_bounds_the_whole_answer_not_each_read(driver, origin):
    origin.routes["/cat.jpg"] = dribble
    [outcome] = driver.fetch("cat.jpg", master=origin.url(), read_timeout=QUICK)
    assert "read_timeout" in failed(outcome, "OriginTimeout")
    assert QUICK <= outcome["seconds"] < QUICK + 2


def test_an_unreachable_origin_times_out_after_connect_timeout(driver):
    port, sockets = backlogged_port()
    try:
        [outcome] = driver.fetch("cat.jpg", master=f"http://127.0.0.1:{port}/",
                                 connect_timeout=QUICK)
    finally:
        for sock in sockets:
            sock.close()
    assert "connect_timeout (0.3 s)" in failed(outcome, "OriginTimeout")
    assert QUICK <= outcome["seconds"] < QUICK + 2


def test_a_closed_port_is_an_origin_error(driver):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        [outcome] = driver.fetch("cat.jpg", master=f"http://127.0.0.1:{port}/")
    assert failed(outcome, "OriginError") == "origin 127.0.0.1: cannot connect"


def test_a_declared_length_over_max_bytes_is_refused(driver, origin):
    origin.routes["/big.jpg"] = endless(b"HTTP/1.1 200 OK\r\nContent-Length: 10000001\r\n\r\n")
    [outcome] = driver.fetch("big.jpg", master=origin.url(), max_bytes=LIMIT)
    assert f"max_bytes ({LIMIT})" in failed(outcome, "SourceTooLarge")
    assert origin.cut.wait(5)


def test_a_chunked_body_over_max_bytes_is_cut_off(driver, origin):
    origin.routes["/big.jpg"] = endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunked=True)
    [outcome] = driver.fetch("big.jpg", master=origin.url(), max_bytes=LIMIT)
    assert f"max_bytes ({LIMIT})" in failed(outcome, "SourceTooLarge")
    assert origin.cut.wait(5)


def test_a_small_content_length_does_not_hide_a_chunked_body(driver, origin):
    origin.routes["/big.jpg"] = endless(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked=True)
    [outcome] = driver.fetch("big.jpg", master=origin.url(), max_bytes=LIMIT)
    failed(outcome, "SourceTooLarge")
    assert origin.cut.wait(5)


def test_a_body_ended_by_closing_is_cut_off_past_max_bytes(driver, origin):
    origin.routes["/big.jpg"] = endless(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    [outcome] = driver.fetch("big.jpg", master=origin.url(), max_bytes=LIMIT)
    failed(outcome, "SourceTooLarge")
    assert origin.cut.wait(5)


def test_bytes_past_a_small_content_length_are_never_taken(driver, origin):
    origin.routes["/cat.jpg"] = endless(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    [outcome] = driver.fetch("cat.jpg", master=origin.url(), max_bytes=LIMIT)
    assert fetched(outcome) == b"hello"
    assert origin.cut.wait(5)


def test_a_body_of_exactly_max_bytes_is_taken(driver, origin):
    origin.routes["/cat.jpg"] = image(b"x" * LIMIT)
    [outcome] = driver.fetch("cat.jpg", master=origin.url(), max_bytes=LIMIT)
    assert len(fetched(outcome)) == LIMIT


def test_redirects_are_followed(driver, origin):
    origin.routes["/old.jpg"] = redirect("/new.jpg", 301)
    origin.routes["/new.jpg"] = redirect(origin.url() + "newer.jpg#fragment", 307)
    origin.routes["/newer.jpg"] = image()
    [outcome] = driver.fetch("old.jpg", master=origin.url())
    assert fetched(outcome) == IMAGE
    assert origin.paths() == ["/old.jpg", "/new.jpg", "/newer.jpg"]


def test_a_redirect_chain_over_max_redirects_is_an_origin_error(driver, origin):
    for hop in range(5):
        origin.routes[f"/r{hop}"] = redirect(f"/r{hop + 1}")
    [outcome] = driver.fetch("r0", master=origin.url(), max_redirects=2)
    assert "max_redirects (2)" in failed(outcome, "OriginError")
    assert origin.paths() == ["/r0", "/r1", "/r2"]


def test_a_redirect_to_another_scheme_is_an_origin_error(driver, origin):
    origin.routes["/cat.jpg"] = redirect("file:///etc/passwd")
    [outcome] = driver.fetch("cat.jpg", master=origin.url())
    failed(outcome, "OriginError")


def test_a_redirect_to_a_refused_address_is_not_followed(driver, make_origin):
    origin, inside = make_origin(), make_origin("127.0.0.2")
    origin.routes["/cat.jpg"] = redirect(inside.url() + "cat.jpg")
    inside.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=origin.url("localhost"), allow=("localhost",))
    message = failed(outcome, "OriginError")
    assert message == "origin localhost: address refused (loopback address)"
    assert origin.paths() == ["/cat.jpg"]
    assert inside.connections == 0


def test_loopback_is_refused_before_connecting(driver, origin):
    origin.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=origin.url(), allow=())
    assert "address refused (loopback address)" in failed(outcome, "OriginError")
    assert origin.connections == 0


def test_a_name_resolving_to_a_private_address_is_refused(driver):
    [outcome] = driver.fetch("cat.jpg", master="http://origin.test/",
                             hosts={"origin.test": ["10.20.30.40"]})
    message = failed(outcome, "OriginError")
    assert message == "origin origin.test: address refused (private address)"


def test_an_unknown_name_is_an_origin_error(driver):
    [outcome] = driver.fetch("cat.jpg", master="http://origin.test/", hosts={})
    assert failed(outcome, "OriginError") == "origin origin.test: host name not found"


def test_a_name_in_allow_is_fetched_from_with_its_host_header(driver, origin):
    origin.routes["/cat.jpg"] = image()
    [outcome] = driver.fetch("cat.jpg", master=f"http://media.internal:{origin.port}/",
                             allow=("media.internal",), hosts={"media.internal": ["127.0.0.1"]})
    assert fetched(outcome) == IMAGE
    assert origin.seen == [("/cat.jpg", f"media.internal:{origin.port}")]


def test_only_the_vetted_addresses_of_a_name_are_connected_to(driver, make_origin):
    origin = make_origin()
    decoy = make_origin("127.0.0.2", origin.port)
    origin.routes["/cat.jpg"] = image()
    decoy.routes["/cat.jpg"] = image(b"decoy")
    [outcome] = driver.fetch("cat.jpg", master=f"http://origin.test:{origin.port}/",
                             hosts={"origin.test": ["127.0.0.2", "127.0.0.1"]})
    assert fetched(outcome) == IMAGE
    assert decoy.connections == 0


# The child process ---------------------------------------------------------------

def _drive(reactor, request):
    """Fetch the request's sources at once; a Deferred firing with their outcomes."""
    from twisted.internet import defer

    from imagepipe.web.origins.client import HttpOrigins

    hosts = request["hosts"]
    resolver = None if hosts is None else (lambda host: defer.succeed(hosts.get(host, [])))
    settings = {key: tuple(value) if isinstance(value, list) else value
                for key, value in request["settings"].items()}
    origins = HttpOrigins(reactor, OriginSettings(**settings), resolver)
    started = reactor.seconds()

    def outcome(result):
        seconds = reactor.seconds() - started
        if hasattr(result, "value"):
            return {"error": type(result.value).__name__, "message": str(result.value),
                    "seconds": seconds}
        return {"data": result.data.decode("latin-1"), "version": result.version,
                "modified": result.modified, "seconds": seconds}

    d = defer.gatherResults([origins.fetch(source).addBoth(outcome)
                             for source in request["sources"]])
    d.addCallback(lambda outcomes: origins.close().addCallback(lambda _: outcomes))
    return d


def _serve():
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    class Requests(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            request = json.loads(line)
            d = _drive(reactor, request)
            d.addCallback(lambda outcomes: self.sendLine(json.dumps(
                {"id": request["id"], "outcomes": outcomes}).encode()))
            d.addErrback(lambda failure: (failure.printTraceback(), reactor.stop()))

        def connectionLost(self, reason):
            reactor.stop()

    stdio.StandardIO(Requests())
    reactor.run()


if __name__ == "__main__":
    _serve()
