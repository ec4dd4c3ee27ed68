"""The operations surface on real nodes: /metrics (Prometheus), statsd over a real UDP
socket, Sentry envelopes to a real local HTTP server, the whole /status, JSON log lines."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.net import free_pair, wait_for
from support.samples import picture
from support.server import b64

pytestmark = pytest.mark.slow


def scrape(node, **headers):
    request = urllib.request.Request(node.url + "metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def get(node, path):
    with urllib.request.urlopen(node.url + path, timeout=30) as answer:
        return answer.read()


def test_metrics_count_requests_spans_cache_and_calls(make_server):
    node = make_server().start()
    node.proxy().store_image(b64(picture(800, 600)), "m/a.jpg", "jpg", {"": [400, 300]})
    get(node, "r/w:100/m/a.jpg")  # a miss: rendered
    get(node, "r/w:100/m/a.jpg")  # a hit
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(node.url + "r/w:100/m/none.jpg", timeout=30)
    samples = scrape(node)
    assert value(samples, "imagepipe_requests_total") == 3
    assert value(samples, "imagepipe_status_codes_total", status="200") == 2
    assert value(samples, "imagepipe_status_codes_total", status="404") == 1
    assert value(samples, "imagepipe_errors_total", type="SourceMissing") == 1
    assert value(samples, "imagepipe_cache_hits_total") == 1
    assert value(samples, "imagepipe_cache_misses_total") == 2
    assert value(samples, "imagepipe_request_duration_seconds_count") == 3
    for span in ("queue", "cache", "fetch", "decode", "resize", "encode", "render",
                 "cache_store"):
        assert value(samples, "imagepipe_request_span_duration_seconds_count",
                     span=span) >= 1, span
    assert value(samples, "imagepipe_rpc_calls_total", method="store_image", fault="0") == 1
    assert value(samples, "imagepipe_rpc_duration_seconds_count", method="store_image") == 1
    assert value(samples, "imagepipe_requests_in_progress") == 0
    assert value(samples, "imagepipe_images_in_progress") == 0
    assert value(samples, "imagepipe_workers", lane="renders") >= 1
    assert value(samples, "imagepipe_workers_utilization", lane="calls") == 0
    assert value(samples, "imagepipe_cache_bytes") > 0
    assert value(samples, "imagepipe_cache_evictions_total") == 0
    assert value(samples, "imagepipe_process_resident_memory_bytes") > 10_000_000
    assert value(samples, "imagepipe_process_open_fds") > 0
    with pytest.raises(xmlrpc.client.Fault):
        node.proxy().delete_image("../escape.jpg")
    assert value(scrape(node), "imagepipe_rpc_calls_total", method="delete_image",
                 fault="1000") == 1


def test_metrics_ask_the_write_api_s_credentials_unless_open(make_server, tmp_path):
    (tmp_path / "tokens").write_text("s3cret\n")
    node = make_server(network__auth="token", network__auth_file=str(tmp_path / "tokens"))
    node.start()
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(node)
    assert refused.value.code == 401
    assert value(scrape(node, Authorization="Bearer s3cret"), "imagepipe_requests_total") == 0
    open_node = make_server(network__auth="token", network__auth_file=str(tmp_path / "tokens"),
                            metrics__open="true").start()
    assert value(scrape(open_node), "imagepipe_requests_total") == 0


def test_statsd_gets_stage_timers_and_counters_over_udp(make_server):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    port = receiver.getsockname()[1]
    node = make_server(metrics__statsd=f"127.0.0.1:{port}", metrics__statsd_prefix="ip").start()
    node.proxy().store_image(b64(picture(600, 400)), "s/a.jpg", "jpg", {"": [300, 200]})
    get(node, "r/w:120/s/a.jpg")
    get(node, "r/w:120/s/a.jpg")
    packets = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            packets.extend(receiver.recv(65536).decode().split("\n"))
        except socket.timeout:
            if any(p.startswith("ip.cache.hit:") for p in packets):
                break
    receiver.close()
    names = {packet.split(":")[0]: packet.split(":", 1)[1] for packet in packets if packet}
    assert names["ip.rpc.store_image.ok"] == "1|c"
    assert names["ip.requests.status.200"] == "1|c"
    assert names["ip.requests.format.jpeg"] == "1|c"
    assert names["ip.cache.miss"] == "1|c" and names["ip.cache.hit"] == "1|c"
    for timer in ("cache_check", "fetch", "resize", "cache_store", "rpc.store_image"):
        assert names[f"ip.{timer}"].endswith("|ms"), timer
        assert float(names[f"ip.{timer}"].split("|")[0]) >= 0


class Envelopes(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        Envelopes.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_an_internal_error_reaches_sentry_without_the_payload():
    from twisted.internet import defer
    from twisted.web.test.requesthelper import DummyRequest
    from io import BytesIO

    from imagepipe.auth import Authenticator
    from imagepipe.reporting import Reporter
    from imagepipe.rpc import ImagepipeRPC

    server = ThreadingHTTPServer(("127.0.0.1", 0), Envelopes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Envelopes.received.clear()
    payload = b64(picture(64, 64))
    secret = "supersecretsigningkey"

    class Store:
        def store(self, parse):
            return defer.maybeDeferred(self.write, payload, secret)

        def write(self, image, key):  # a frame whose locals Sentry must not send
            raise RuntimeError(f"the disk answered nonsense ({len(image)} bytes)")

    reporter = Reporter(f"http://publickey@127.0.0.1:{server.server_address[1]}/42",
                        "node-7", "9.9.9", "testing")
    request = DummyRequest([b""])
    request.method = b"POST"
    request.content = BytesIO(xmlrpc.client.dumps((payload, "a.jpg"), "store_image").encode())
    ImagepipeRPC(Store(), Authenticator("none"), reporter=reporter).render_POST(request)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(b"".join(request.written))
    assert fault.value.faultCode == 1002
    reporter.close()
    server.shutdown()
    [(path, body)] = Envelopes.received
    assert path == "/api/42/envelope/"
    header, item_header, event = (json.loads(line) for line in body.split(b"\n")[:3])
    assert item_header["type"] == "event"
    assert event["server_name"] == "node-7" and event["release"] == "imagepipe@9.9.9"
    assert event["environment"] == "testing"
    assert event["tags"]["method"] == "store_image" and len(event["tags"]["request_id"]) == 12
    exception = event["exception"]["values"][0]
    assert exception["value"] == f"the disk answered nonsense ({len(payload)} bytes)"
    frames = exception["stacktrace"]["frames"]
    assert any(frame["function"] == "write" for frame in frames)  # the frame was sent
    assert not any("vars" in frame for frame in frames)
    text = body.decode("utf-8", "replace")
    assert payload[:40] not in text and secret not in text


def test_status_tells_the_node_the_cache_and_each_peer(make_server):
    port = free_pair()
    a = make_server(network__node_name="alpha")
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}"}
    b = make_server(network__node_name="beta")
    b.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                 "subscribe": f"tcp://127.0.0.1:{port}"}
    a.start()
    b.start()
    a.proxy().store_image(b64(picture(300, 200)), "st/a.jpg", "jpg", {"": [100, 100]})
    get(a, "r/w:50/st/a.jpg")

    def status(node):
        return json.loads(get(node, "status"))

    first = status(a)
    assert (first["node"], first["engine"], first["backend"]) == ("alpha", "wand", "tree")
    assert "jpg" in first["formats"] and first["version"]
    assert first["cache"]["entries"] == 1 and 0 < first["cache"]["bytes"] <= \
        first["cache"]["budget"]
    assert first["replication"]["published_sequence"] == 1
    assert first["replication"]["journal"]["bytes"] > 0
    wait_for(lambda: status(b)["replication"]["peers"][0]["up"], 15, what="a heartbeat")
    peer = status(b)["replication"]["peers"][0]
    assert peer["endpoint"] == f"tcp://127.0.0.1:{port}" and peer["highest_applied"] == 1
    wait_for(lambda: status(b)["replication"]["peers"][0]["behind"] == 0, 15, what="caught up")
    a.stop()
    wait_for(lambda: not status(b)["replication"]["peers"][0]["up"], 15, what="peer down")


def test_log_format_json_makes_every_twistd_line_a_json_object(make_server):
    node = make_server(network__log_format="json").start()
    node.proxy().store_image(b64(picture(200, 100)), "j/a.jpg", "jpg", {"": [50, 50]})

    def events():
        return [json.loads(line) for line in node.log().splitlines() if line.startswith("{")]

    wait_for(lambda: any("listening on" in event["text"] for event in events()), 10,
             what="the listening line, as JSON")
    lines = [line for line in node.log().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines[:5]  # nothing left as text
    assert all({"log_namespace", "log_time", "log_level", "text"} <= set(event)
               for event in events())
    assert any(event["log_namespace"] == "imagepipe" and "engine wand" in event["text"]
               for event in events())


def test_metrics_listen_serves_metrics_there_and_only_there(make_server):
    from support.net import free_port

    port = free_port()
    node = make_server(metrics__listen=f"tcp:{port}:interface=127.0.0.1").start()
    node.proxy().store_image(b64(picture(200, 100)), "ml/a.jpg", "jpg", {"": [50, 50]})
    wait_for(lambda: f"127.0.0.1:{port} (tcp) for /metrics" in node.log(), 10,
             what="the metrics listener in the log")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    assert 'imagepipe_rpc_calls_total{fault="0",method="store_image"} 1.0' in text
    for url in (node.url + "metrics", f"http://127.0.0.1:{port}/",
                f"http://127.0.0.1:{port}/status"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url, timeout=30)
        assert missing.value.code == 404, url
    # Only the main port's requests are in the access log (the 404 for /metrics there).
    wait_for(lambda: '"GET /metrics HTTP/1.1" 404' in node.log(), 10, what="the access line")
    assert node.log().count('"GET /') == 1, node.log()


def test_with_metrics_off_nothing_is_counted_and_metrics_is_not_served(make_server):
    node = make_server(metrics__enabled="false").start()
    node.proxy().store_image(b64(picture(300, 200)), "off/a.jpg", "jpg", {"": [100, 100]})
    get(node, "r/w:50/off/a.jpg")
    with pytest.raises(urllib.error.HTTPError) as missing:
        scrape(node)
    assert missing.value.code == 404


def test_render_processes_report_the_stages_too(make_server):
    node = make_server(images__render_processes=1).start()
    node.proxy().store_image(b64(picture(400, 300)), "rp/a.jpg", "jpg", {"": [400, 300]})
    get(node, "r/w:100/rp/a.jpg")
    samples = scrape(node)
    for span in ("fetch", "decode", "resize", "encode", "render", "queue"):
        assert value(samples, "imagepipe_request_span_duration_seconds_count",
                     span=span) == 1, span
