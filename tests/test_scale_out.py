"""docs/scale-out.md, run: two imagepipe nodes on one bucket of a real S3 API server, behind
nginx with examples/nginx/scale-out.conf (every URL to one node, hash $uri consistent)."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import xmlrpc.client

import pytest

from support import nginx
from support.net import free_port, wait_for, wait_listening
from support.samples import picture
from support.server import ROOT, b64

pytestmark = pytest.mark.slow

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SITE = ROOT / "examples" / "nginx" / "scale-out.conf"
REVALIDATE = 2.0


def renders(node):
    with urllib.request.urlopen(node.url + "status", timeout=10) as answer:
        return json.loads(answer.read())["on_the_fly"]["renders"]


@pytest.fixture
def cluster(make_server, s3, tmp_path):
    bucket = s3.new_bucket()
    nodes = []
    for _ in range(2):
        node = make_server()
        node.sections["images"]["backend"] = "s3"
        node.sections["s3"] = s3.settings(bucket, revalidate=f"{REVALIDATE}s")
        node.sections["network"]["serve_images"] = "false"
        nodes.append(node.start())
    port = free_port()
    site = SITE.read_text()
    for token, value in (("@LISTEN@", f"127.0.0.1:{port}"),
                         ("@NODE_A@", f"127.0.0.1:{nodes[0].port}"),
                         ("@NODE_B@", f"127.0.0.1:{nodes[1].port}")):
        assert token in site, token
        site = site.replace(token, value)
    base = tmp_path / "nginx"
    nginx.lay_out(base, site, user="root" if os.geteuid() == 0 else None)
    assert os.access(NGINX, os.X_OK), f"nginx is required for these tests ({NGINX})"
    output = open(base / "output.log", "ab")
    process = subprocess.Popen(nginx.command(NGINX, base), stdout=output,
                               stderr=subprocess.STDOUT)
    wait_listening(process, port, lambda: (base / "error.log").read_text(), 15, name="nginx")
    yield f"http://127.0.0.1:{port}", nodes, bucket
    process.terminate()
    process.wait(15)
    output.close()


def get(front, path):
    with urllib.request.urlopen(front + path, timeout=30) as answer:
        return answer.status, answer.read()


def status_of(front, path):
    try:
        return get(front, path)[0]
    except urllib.error.HTTPError as error:
        return error.code


def test_a_store_through_one_node_is_served_by_the_other_and_a_delete_reaches_both(cluster, s3):
    front, (a, b), bucket = cluster
    assert a.proxy().store_image(b64(picture(900, 600)), "shared/cat.jpg", "jpg",
                                 {"": [600, 400]}) == "OK"
    # Each URL is always rendered by the same node: find one that goes to each.
    served_by = {}
    for width in range(100, 160):
        path = f"/r/w:{width}/shared/cat.jpg"
        before = (renders(a), renders(b))
        assert get(front, path)[0] == 200
        after = (renders(a), renders(b))
        node = "a" if after[0] > before[0] else "b"
        assert after[1 if node == "a" else 0] == before[1 if node == "a" else 0]
        served_by.setdefault(node, path)
        assert get(front, path)[0] == 200  # again: a hit on the same node, no new render
        assert (renders(a), renders(b)) == after
        if len(served_by) == 2:
            break
    assert sorted(served_by) == ["a", "b"]  # B rendered a picture stored through A
    # A delete through B: B forgets at once; A within [s3] revalidate.
    assert b.proxy().delete_image("shared/cat.jpg") == "OK"
    assert status_of(front, served_by["b"]) == 404
    deleted = time.monotonic()
    wait_for(lambda: status_of(front, served_by["a"]) == 404, REVALIDATE + 5,
             what="node A to see the delete")
    assert time.monotonic() - deleted <= REVALIDATE + 1
    assert s3.objects(bucket) == {}


def test_xml_rpc_through_nginx_reaches_a_node_and_the_bucket(cluster, s3):
    front, _, bucket = cluster
    proxy = xmlrpc.client.ServerProxy(front + "/RPC2")
    assert proxy.store_image(b64(picture(300, 200)), "via/nginx.jpg", "jpg",
                             {"": [100, 100]}) == "OK"
    assert list(s3.objects(bucket)) == ["via/nginx.jpg"]
    assert proxy.image_info("via/nginx.jpg")["width"] == 100
