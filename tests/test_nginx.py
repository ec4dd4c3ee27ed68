"""examples/nginx/imagepipe.conf, run by a real nginx in front of a real imagepipe process.

The site file is used as it ships, its placeholders filled, inside a minimal
main config that keeps every nginx path (pid, logs, temp dirs) in a
temporary directory (``support/nginx.py``, which the benchmark uses too).
nginx is required: CI installs it, and a missing nginx fails these tests.
"""

import http.client
import io
import json
import os
import subprocess
import sys
import xmlrpc.client

import pytest
from PIL import Image

from support import nginx
from support.decoding import opened
from support.net import free_port, wait_listening
from support.samples import picture
from support.server import ROOT, Server

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")


class Nginx:
    """One nginx process serving examples/nginx/imagepipe.conf from a temporary directory."""

    def __init__(self, base, images_root, upstream_port, cache_root):
        self.base = base
        self.port = free_port()
        # As root, workers would run as nobody and could not read pytest's 0700 temp dirs.
        nginx.lay_out(base, nginx.site_config(self.port, upstream_port, images_root, cache_root),
                      user="root" if os.geteuid() == 0 else None)
        self.process = None

    def start(self):
        assert os.access(NGINX, os.X_OK), f"nginx is required for these tests ({NGINX})"
        self._output = open(self.base / "stderr.log", "wb")
        self.process = subprocess.Popen(nginx.command(NGINX, self.base), stdout=self._output,
                                        stderr=subprocess.STDOUT)
        wait_listening(self.process, self.port, self.log, 15, name="nginx")
        return self

    def log(self):
        return "".join(path.read_text(errors="replace") for path in
                       (self.base / "stderr.log", self.base / "error.log") if path.exists())

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self._output.close()

    def get(self, path, **headers):
        """GET ``path``; the response with its body read."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.body = response.read()
        connection.close()
        return response

    def proxy(self):
        return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}/RPC2", allow_none=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """imagepipe set up as the example config's comments say, Dirpy mounted too."""
    base = tmp_path_factory.mktemp("node")
    node = Server(base)
    node.sections["http"] = {"cache_path": str(base / "cache"), "accel_redirect": "/_imagepipe/",
                             "dirpy": {"enabled": "true"}}
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def front(server, tmp_path_factory):
    """nginx with examples/nginx/imagepipe.conf in front of the module's imagepipe."""
    node = Nginx(tmp_path_factory.mktemp("nginx"), server.root, server.port,
                 server.base / "cache").start()
    yield node
    node.stop()


def counts(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/status")
    return json.loads(connection.getresponse().read())["on_the_fly"]


def test_rpc2_is_proxied_to_imagepipe(front, server):
    sizes = {"": [200, 200], "_small": [50, 50]}
    assert front.proxy().store_image(xmlrpc.client.Binary(picture(400, 300)),
                                     "nx/a.jpg", "", sizes) == "OK"
    assert opened((server.root / "nx/a.jpg").read_bytes()).size == (200, 150)
    assert opened((server.root / "nx/a_small.jpg").read_bytes()).size == (50, 38)


def test_rpc2_accepts_uploads_over_nginx_default_one_megabyte(front, server):
    noise = Image.frombytes("RGB", (1100, 1100), os.urandom(1100 * 1100 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    data = out.getvalue()
    assert len(data) > 1024 * 1024
    front.proxy().store_image(xmlrpc.client.Binary(data), "nx/big.jpg")
    assert (server.root / "nx/big.jpg").read_bytes() == data


def test_stored_image_is_served_with_its_type_and_cache_headers(front, server):
    front.proxy().store_image(xmlrpc.client.Binary(picture(120, 80)), "nx/served.jpg")
    response = front.get("/nx/served.jpg")
    assert response.status == 200
    assert response.getheader("Content-Type") == "image/jpeg"
    assert response.body == (server.root / "nx/served.jpg").read_bytes()
    assert opened(response.body).size == (120, 80)
    assert response.getheader("ETag")
    assert response.getheader("Cache-Control") == "max-age=604800"
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_formats_get_their_own_content_types(front):
    front.proxy().store_image(xmlrpc.client.Binary(picture(40, 40)), "nx/t.jpg",
                              {"": "png", "_w": "webp"}, {"": [40, 40], "_w": [20, 20]})
    assert front.get("/nx/t.png").getheader("Content-Type") == "image/png"
    assert front.get("/nx/t_w.webp").getheader("Content-Type") == "image/webp"


def test_request_with_the_etag_gets_304(front):
    front.proxy().store_image(xmlrpc.client.Binary(picture(60, 60)), "nx/cached.jpg")
    etag = front.get("/nx/cached.jpg").getheader("ETag")
    revalidated = front.get("/nx/cached.jpg", **{"If-None-Match": etag})
    assert revalidated.status == 304 and revalidated.body == b""


def test_dotfiles_are_not_served(front, server):
    (server.root / "nx").mkdir(exist_ok=True)
    (server.root / ".secret").write_text("root dotfile")
    (server.root / "nx" / ".imagepipe-tmp.abc").write_bytes(picture(10, 10))
    assert front.get("/.secret").status in (403, 404)
    assert front.get("/nx/.imagepipe-tmp.abc").status in (403, 404)


def test_directories_are_not_listed(front):
    front.proxy().store_image(xmlrpc.client.Binary(picture(10, 10)), "nx/listed/a.jpg")
    for path in ("/nx/listed/", "/nx/listed", "/"):
        response = front.get(path)
        assert response.status in (403, 404) and b"a.jpg" not in response.body


def test_symlinks_in_the_tree_are_not_followed(front, server, tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(picture(10, 10))
    (server.root / "nx").mkdir(exist_ok=True)
    (server.root / "nx" / "link.jpg").symlink_to(outside)
    assert front.get("/nx/link.jpg").status in (403, 404)


def test_example_client_works_through_nginx(front, server, tmp_path):
    source = tmp_path / "c.jpg"
    source.write_bytes(picture(300, 100))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "client.py"),
                           "--port", str(front.port), "-i", str(source),
                           "--remote-path", "nx/client/c.jpg", "--size", "-", "150", "150"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert opened(front.get("/nx/client/c.jpg").body).size == (150, 50)


def test_a_miss_is_rendered_once_then_nginx_serves_the_hits(front, server):
    front.proxy().store_image(xmlrpc.client.Binary(picture(400, 200)), "otf/a.jpg")
    before = counts(server)
    miss = front.get("/r/w:100/f:webp/otf/a.jpg")
    assert miss.status == 200, miss.body
    assert miss.getheader("Content-Type") == "image/webp"
    assert opened(miss.body).size == (100, 50)
    rendered = counts(server)
    assert rendered["renders"] == before["renders"] + 1
    for _ in range(3):
        hit = front.get("/r/w:100/f:webp/otf/a.jpg")
        assert hit.body == miss.body
        assert hit.getheader("Content-Type") == "image/webp"
        assert hit.getheader("Cache-Control") == "max-age=86400"
        assert hit.getheader("ETag") == miss.getheader("ETag")
        assert hit.getheader("Last-Modified") == miss.getheader("Last-Modified")
        assert hit.getheader("X-Content-Type-Options") == "nosniff"
    assert counts(server) == rendered  # the hits never reached imagepipe
    revalidated = front.get("/r/w:100/f:webp/otf/a.jpg", **{"If-None-Match": miss.getheader("ETag")})
    assert revalidated.status == 304


def test_the_first_answer_is_sent_by_nginx_from_the_file_imagepipe_wrote(front, server):
    front.proxy().store_image(xmlrpc.client.Binary(picture(300, 300)), "otf/b.jpg")
    response = front.get("/r/w:60/otf/b.jpg")
    cached = server.base / "cache" / "files" / "r" / "w:60" / "otf" / "b.jpg.jpg"
    assert response.body == cached.read_bytes()
    assert response.getheader("Cache-Control") == "max-age=86400"
    assert response.getheader("X-Accel-Redirect") is None
    assert response.getheader("ETag")


def test_dirpy_queries_are_served_by_nginx_once_rendered(front, server):
    front.proxy().store_image(xmlrpc.client.Binary(picture(400, 200)), "otf/d.jpg")
    first = front.get("/dirpy/otf/d.jpg?resize=40x40&save=fmt:png")
    assert first.getheader("Content-Type") == "image/png"
    assert opened(first.body).size == (40, 20)
    other = front.get("/dirpy/otf/d.jpg?resize=20x20")
    assert opened(other.body).size == (20, 10)
    rendered = counts(server)
    again = front.get("/dirpy/otf/d.jpg?resize=40x40&save=fmt:png")
    assert again.body == first.body and counts(server) == rendered


def test_format_auto_goes_through_imagepipe_and_varies_on_accept(front, server):
    front.proxy().store_image(xmlrpc.client.Binary(picture(200, 200)), "otf/auto.jpg")
    webp = front.get("/r/w:50/f:auto/otf/auto.jpg", Accept="image/webp,*/*")
    jpeg = front.get("/r/w:50/f:auto/otf/auto.jpg", Accept="*/*")
    assert webp.getheader("Content-Type") == "image/webp"
    assert jpeg.getheader("Content-Type") == "image/jpeg"
    for response in (webp, jpeg):
        assert response.getheader("Vary") == "Accept"
        assert opened(response.body).size == (50, 50)
    before = counts(server)
    assert front.get("/r/w:50/f:auto/otf/auto.jpg", Accept="image/webp").body == webp.body
    after = counts(server)
    assert (after["renders"], after["cache_hits"]) == (before["renders"],
                                                       before["cache_hits"] + 1)


def test_replacing_the_source_stops_nginx_serving_the_old_result(front):
    proxy = front.proxy()
    proxy.store_image(xmlrpc.client.Binary(picture(200, 100)), "otf/c.jpg")
    assert opened(front.get("/r/w:50/otf/c.jpg").body).size == (50, 25)
    proxy.store_image(xmlrpc.client.Binary(picture(100, 200)), "otf/c.jpg")
    assert opened(front.get("/r/w:50/otf/c.jpg").body).size == (50, 100)
    proxy.delete_image("otf/c.jpg")
    assert front.get("/r/w:50/otf/c.jpg").status == 404


def test_a_query_with_a_slash_never_reaches_the_cache_files(front, server):
    # nginx does not normalise $args: it must not be looked up as a path.
    outside = server.base / "outside.jpg"
    outside.write_bytes(picture(10, 10))
    response = front.get("/dirpy/otf/d.jpg?a=/../../../../outside")
    assert response.status == 400 and b"unknown command" in response.body


def test_errors_pass_through_with_their_message(front):
    response = front.get("/r/w:abc/otf/a.jpg")
    assert response.status == 400
    assert b"width" in response.body
    assert front.get("/r/w:10/otf/nothing.jpg").status == 404
    assert front.get("/_imagepipe/r/w:100/f:webp/otf/a.jpg.webp").status == 404  # internal
