"""On-the-fly resizing over HTTP against a real twistd process, every dialect mounted.

Requests go over real TCP with ``http.client``; the answers are decoded with
Pillow.  The result cache, its invalidation by XML-RPC writes, single-flight,
HTTP caching semantics, the error statuses, signed URLs and ``/health`` are
checked here; nginx in front is in ``test_nginx.py``, replication in
``test_replication.py``.
"""

import hashlib
import http.client
import http.server
import io
import json
import os
import threading
import xmlrpc.client

import pytest
from PIL import Image

from support.decoding import durations, opened
from support.net import wait_for
from support.origins import IMAGE, Origin, delayed, image
from support.samples import photo, picture
from support.server import Server, b64
from imagepipe.cli import sign

WANELO = "shop/abc/def/012/3456789abcdef0123456789"

MOUNTS = {
    "native": {"presets": {"thumb": "w:50/h:50/m:fill"}},
    "openross": {"enabled": "true", "whitelist": "100x100, 80x60"},
    "wanelo": {"enabled": "true"},
    "phizer": {"enabled": "true", "source": "tree", "sizes": {"thumb": "60x60 square",
                                                              "wide": "90x90 landscape"}},
    "dirpy": {"enabled": "true"},
}


def get(node, path, method="GET", **headers):
    """One request; the response with ``body`` read."""
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def counts(node):
    return json.loads(get(node, "/status").body)["on_the_fly"]


def cached_files(node):
    files = node.base / "images" / ".imagepipe" / "cache" / "files"
    return sorted(str(p.relative_to(files)) for p in files.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("http"), images__max_pixels="30MP",
                    images__io_threads=2)
    server.sections["http"] = MOUNTS
    root = server.root
    (root / "photos").mkdir()
    (root / "photos" / "wide.jpg").write_bytes(picture(400, 200))
    (root / "photos" / "alpha.png").write_bytes(picture(64, 64, "RGBA", "PNG"))
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / WANELO).mkdir(parents=True)
    (root / WANELO / "original").write_bytes(picture(300, 150))
    server.start()
    yield server
    server.stop()


def test_native_fit_answers_the_picture_with_cache_headers(node):
    response = get(node, "/r/s:100x100/q:80/f:jpg/photos/wide.jpg")
    assert response.status == 200, response.body
    assert response.getheader("Content-Type") == "image/jpeg"
    assert opened(response.body).size == (100, 50)
    assert response.getheader("Cache-Control") == "max-age=86400"
    assert response.getheader("ETag") and response.getheader("Last-Modified")
    assert response.getheader("Vary") is None
    assert int(response.getheader("Content-Length")) == len(response.body)


def test_a_second_request_is_a_cache_hit_and_a_conditional_one_gets_304(node):
    path = "/r/w:120/photos/wide.jpg"
    first = get(node, path)
    before = counts(node)
    again = get(node, path)
    after = counts(node)
    assert again.body == first.body and again.getheader("ETag") == first.getheader("ETag")
    assert after["renders"] == before["renders"]
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert "r/w:120/photos/wide.jpg.jpg" in cached_files(node)
    revalidated = get(node, path, **{"If-None-Match": first.getheader("ETag")})
    assert (revalidated.status, revalidated.body) == (304, b"")
    since = get(node, path, **{"If-Modified-Since": first.getheader("Last-Modified")})
    assert since.status == 304


def test_if_modified_since_does_not_count_beside_a_wrong_etag(node):
    path = "/r/w:121/photos/wide.jpg"
    first = get(node, path)
    response = get(node, path, **{"If-None-Match": '"other"',
                                  "If-Modified-Since": first.getheader("Last-Modified")})
    assert response.status == 200 and response.body == first.body


def test_other_spellings_of_a_cached_picture_are_linked_not_rendered(node):
    first = get(node, "/r/w:77/h:50/photos/wide.jpg")
    before = counts(node)
    for spelling in ("/r/h:50/w:77/photos/wide.jpg", "/r/width:77/height:50/photos/wide.jpg",
                     "/r/s:77x50/-/photos/wide.jpg", "/r/m:fit/s:77x50/photos/wide.jpg"):
        response = get(node, spelling)
        assert response.body == first.body, spelling
    after = counts(node)
    assert after["renders"] == before["renders"]
    files = node.base / "images" / ".imagepipe" / "cache" / "files"
    linked = files / "r" / "width:77" / "height:50" / "photos" / "wide.jpg.jpg"
    assert linked.stat().st_nlink >= 3  # one file, several names


def test_a_hit_too_large_to_hold_is_streamed_from_its_file(node):
    (node.root / "photos" / "grainy.jpg").write_bytes(photo(640, 360))
    path = "/r/w:640/f:png/photos/grainy.jpg"  # a PNG of film grain: well over 64 KiB
    first = get(node, path)
    before = counts(node)["cache_hits"]
    again = get(node, path)
    head = get(node, path, method="HEAD")
    assert first.status == again.status == head.status == 200
    assert len(first.body) > 64 << 10 and again.body == first.body
    assert again.getheader("Content-Length") == head.getheader("Content-Length") == str(
        len(first.body))
    assert again.getheader("ETag") == head.getheader("ETag") == first.getheader("ETag")
    assert counts(node)["cache_hits"] == before + 2


def test_head_gives_the_headers_without_the_body(node):
    response = get(node, "/r/w:33/photos/wide.jpg", method="HEAD")
    assert response.status == 200 and response.body == b""
    assert int(response.getheader("Content-Length")) > 0


@pytest.mark.parametrize("path, size, mime", [
    ("/r/preset:thumb/photos/wide.jpg", (50, 50), "image/jpeg"),
    ("/r/w:40/h:40/m:pad/bg:00ff00/f:png/photos/wide.jpg", (40, 40), "image/png"),
    ("/r/w:30/h:70/m:force/photos/wide.jpg", (30, 70), "image/jpeg"),
    ("/r/c:0,0,0.5,1/r:90/photos/wide.jpg", (200, 200), "image/jpeg"),
    ("/openross/100/100/crop/photos/wide.jpg", (100, 100), "image/jpeg"),
    ("/openross/80/60/resizecomp/photos/wide.jpg", (80, 60), "image/jpeg"),
    (f"/wanelo/{WANELO}/x50.webp", (50, 50), "image/webp"),
    (f"/wanelo/{WANELO}/w100-q60.jpg", (100, 50), "image/jpeg"),
    (f"/wanelo/{WANELO}/full_size.png", (300, 150), "image/png"),
    ("/phizer/thumb/photos/wide.jpg", (60, 60), "image/jpeg"),
    ("/phizer/wide/0x0/500x1000/photos/wide.jpg", (90, 90), "image/jpeg"),
    ("/dirpy/photos/wide.jpg?resize=100x100&save=fmt:png", (100, 50), "image/png"),
    ("/dirpy/photos/wide.jpg?resize=50x50,fill&crop=50x50", (50, 50), "image/jpeg"),
])
def test_every_dialect_serves_its_urls(node, path, size, mime):
    response = get(node, path)
    assert response.status == 200, response.body
    assert response.getheader("Content-Type") == mime
    assert opened(response.body).size == size


@pytest.mark.parametrize("query, size", [
    ("pad=500x300,bg:00f", (500, 300)),  # pad alone: the source on a blue 500x300
    ("transpose=rotate90&resize=100x400", (100, 200)),  # turned to 200x400, then fitted
    ("resize=100x400&transpose=rotate90", (50, 100)),  # fitted to 100x50, then turned
    ("transpose=flipvert&save=fmt:png", (400, 200)),
    ("transpose=fliphorz&resize=200x100&pad=200x200,bg:0f0", (200, 200)),
])
def test_dirpy_commands_apply_in_the_order_written(node, query, size):
    response = get(node, f"/dirpy/photos/wide.jpg?{query}")
    assert response.status == 200, response.body
    image = opened(response.body).convert("RGB")
    assert image.size == size
    if query.startswith("pad"):
        corner, inside = image.getpixel((2, 2)), image.getpixel((250, 150))
        assert corner[2] > 200 and corner[0] < 60 and inside[0] > 150  # blue around red
    if "bg:0f0" in query:
        assert image.getpixel((100, 10))[1] > 200 and image.getpixel((100, 100))[0] > 150


def test_dirpy_queries_are_separate_cache_entries(node):
    small = get(node, "/dirpy/photos/wide.jpg?resize=20x20")
    large = get(node, "/dirpy/photos/wide.jpg?resize=40x40")
    assert opened(small.body).size == (20, 10) and opened(large.body).size == (40, 20)
    assert "dirpy/photos/wide.jpg?resize=20x20.jpg" in cached_files(node)


def test_format_auto_follows_accept_and_says_vary(node):
    webp = get(node, "/r/w:50/f:auto/photos/wide.jpg", Accept="image/webp,*/*")
    plain = get(node, "/r/w:50/f:auto/photos/wide.jpg", Accept="image/*;q=0.8")
    refused = get(node, "/r/w:50/f:auto/photos/wide.jpg", Accept="image/webp;q=0")
    assert webp.getheader("Content-Type") == "image/webp"
    assert plain.getheader("Content-Type") == "image/jpeg"
    assert refused.getheader("Content-Type") == "image/jpeg"
    for response in (webp, plain):
        assert response.getheader("Vary") == "Accept"
    alpha = get(node, "/r/w:20/f:auto/photos/alpha.png")
    assert alpha.getheader("Content-Type") == "image/png"


@pytest.mark.parametrize("path, status, message", [
    ("/r/w:abc/photos/wide.jpg", 400, "width"),
    ("/r/m:stretch/w:5/h:5/photos/wide.jpg", 400, "mode"),
    ("/r/w:5/../photos/wide.jpg", 400, ""),
    ("/r/w:5/%ff.jpg", 400, "UTF-8"),
    ("/openross/90/90/crop/photos/wide.jpg", 403, "whitelist"),
    ("/openross/100/100/crop/photos/missing.jpg", 404, "no such image"),
    ("/phizer/nosuchcode/photos/wide.jpg", 403, "size code"),
    ("/dirpy/photos/wide.jpg?resize=10x10&eval=1", 400, "unknown command"),
    (f"/wanelo/{WANELO.upper()}/x50.jpg", 400, "namespace"),
    ("/r/w:50/photos/missing.jpg", 404, "no such image"),
    ("/r/w:50/photos/broken.jpg", 422, "image"),
    ("/r/w:9000/h:9000/m:force/e:1/photos/wide.jpg", 422, "max_pixels"),
])
def test_bad_requests_get_a_status_naming_the_problem(node, path, status, message):
    response = get(node, path)
    assert response.status == status, response.body
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-store"
    assert message.lower() in response.body.decode().lower()
    assert get(node, "/r/w:10/photos/wide.jpg").status == 200  # still serving


def test_replacing_a_source_over_xmlrpc_invalidates_its_results(node):
    proxy = node.proxy()
    proxy.store_image(b64(picture(200, 100, colour=(10, 200, 10))), "inval/a.jpg")
    first = get(node, "/r/w:50/inval/a.jpg")
    assert opened(first.body).size == (50, 25)
    assert "r/w:50/inval/a.jpg.jpg" in cached_files(node)
    proxy.store_image(b64(picture(100, 200)), "inval/a.jpg")
    assert "r/w:50/inval/a.jpg.jpg" not in cached_files(node)
    assert opened(get(node, "/r/w:50/inval/a.jpg").body).size == (50, 100)
    proxy.move_image("inval/a.jpg", "inval/b.jpg")
    assert "r/w:50/inval/a.jpg.jpg" not in cached_files(node)
    assert get(node, "/r/w:50/inval/a.jpg").status == 404
    assert get(node, "/r/w:50/inval/b.jpg").status == 200
    proxy.delete_image("inval/b.jpg")
    assert get(node, "/r/w:50/inval/b.jpg").status == 404
    assert not any(name.startswith("r/w:50/inval/") for name in cached_files(node))


def test_a_source_changed_behind_imagepipe_renders_again(node):
    path = node.root / "photos" / "changing.jpg"
    path.write_bytes(picture(100, 100))
    assert opened(get(node, "/r/w:10/photos/changing.jpg").body).size == (10, 10)
    path.write_bytes(picture(100, 50))
    assert opened(get(node, "/r/w:10/photos/changing.jpg").body).size == (10, 5)


def test_concurrent_identical_requests_render_once(node):
    node.root.joinpath("photos", "big.jpg").write_bytes(photo())
    before = counts(node)
    results = []

    def fetch():
        results.append(get(node, "/r/w:300/q:70/photos/big.jpg"))

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = counts(node)
    assert [r.status for r in results] == [200] * 6
    assert len({r.body for r in results}) == 1
    assert after["renders"] - before["renders"] == 1
    assert after["shared"] - before["shared"] + after["cache_hits"] - before["cache_hits"] == 5


def test_health_renders_every_mode(node):
    response = get(node, "/health")
    assert response.status == 200, response.body
    report = json.loads(response.body)
    assert report["ok"] is True
    assert {check["mode"] for check in report["checks"]} >= {"fit", "fill", "pad", "force",
                                                            "crop+rotate", "trim"}
    assert all(check["got"] == check["expected"] for check in report["checks"])


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    base = tmp_path_factory.mktemp("signed")
    keys = base / "signing.keys"
    keys.write_text(f"{'ab' * 32}\n{'cd' * 16}\n")
    server = Server(base)
    server.sections["http"] = {"sign_keys": str(keys), "cache_max_bytes": 0,
                               "dirpy": {"enabled": "true"}}
    (server.root / "cat.jpg").write_bytes(picture(120, 60))
    server.start()
    yield server
    server.stop()


def test_signed_urls_pass_with_any_key_and_fail_otherwise(signed):
    url = sign(str(signed.config), "/r/w:60/m:fit/cat.jpg")
    assert url.startswith("/r/") and len(url.split("/")[2]) == 43
    assert get(signed, url).status == 200
    # The same picture asked another way has the same canonical path and signature.
    signature = url.split("/")[2]
    assert get(signed, f"/r/{signature}/width:60/cat.jpg").status == 200
    # Signed with the second (older) key.
    from imagepipe.web.dialects import Request
    from imagepipe.web.signing import Signer, canonical_path
    from imagepipe.imaging.transform import Transform

    text = canonical_path("tree", Request("cat.jpg", Transform(width=60)))
    old = Signer([bytes.fromhex("cd" * 16)]).sign(text)
    assert get(signed, f"/r/{old}/w:60/cat.jpg").status == 200
    for bad in (f"/r/{signature}/w:61/cat.jpg", "/r/w:60/cat.jpg", f"/r/{'A' * 43}/w:60/cat.jpg"):
        response = get(signed, bad)
        assert response.status == 403, bad
        assert b"signature" in response.body
    query = sign(str(signed.config), "/dirpy/cat.jpg?resize=30x30")
    assert opened(get(signed, query).body).size == (30, 15)


def test_the_render_queue_full_answers_429(make_server):
    server = make_server(http__render_threads=1, http__max_render_pending=1,
                         http__max_client_renders=100, http__cache_max_bytes=0)
    server.root.joinpath("big.jpg").write_bytes(photo())
    server.start()
    statuses = []

    reasons, bodies = {}, {}

    def fetch(index):
        response = get(server, f"/r/w:{500 + index}/big.jpg")
        statuses.append(response.status)
        reasons[response.status] = (response.reason, response.body[:22])
        bodies[response.status] = response.body

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 429 in statuses and 200 in statuses
    assert set(statuses) <= {200, 429}
    assert reasons[429] == ("Too Many Requests", b"429 Too Many Requests:")
    assert b"render_threads 1 + max_render_pending 1" in bodies[429]
    assert get(server, "/r/w:10/big.jpg").status == 200


def test_the_cache_stays_within_its_budget(make_server):
    server = make_server(http__cache_max_bytes="20KB")
    server.root.joinpath("a.jpg").write_bytes(picture(400, 400))
    server.start()
    for width in range(100, 300, 10):
        assert get(server, f"/r/w:{width}/a.jpg").status == 200
    files = server.root / ".imagepipe" / "cache" / "files"
    total = sum(p.stat().st_size for p in files.rglob("*") if p.is_file())
    assert 0 < total <= 20_000
    assert (files / "r" / "w:290" / "a.jpg.jpg").exists()  # the latest stays
    assert not (files / "r" / "w:100" / "a.jpg.jpg").exists()


def test_a_restart_removes_cache_files_the_index_does_not_know(make_server):
    server = make_server()
    server.root.joinpath("a.jpg").write_bytes(picture(100, 100))
    server.start()
    assert get(server, "/r/w:10/a.jpg").status == 200
    server.stop()
    files = server.root / ".imagepipe" / "cache" / "files"
    stray = files / "r" / "stray.jpg.jpg"
    stray.write_bytes(b"not from imagepipe")
    os.utime(stray, (1, 1))
    server.start()
    wait_for(lambda: not stray.exists(), timeout=10, what="the stray cache file to go")
    assert (files / "r" / "w:10" / "a.jpg.jpg").exists()
    assert get(server, "/r/w:10/a.jpg").status == 200


def test_changed_settings_empty_the_cache_at_start(make_server):
    server = make_server()
    server.root.joinpath("a.jpg").write_bytes(picture(100, 100))
    server.start()
    assert get(server, "/r/w:10/a.jpg").status == 200
    cached = server.root / ".imagepipe" / "cache" / "files" / "r" / "w:10" / "a.jpg.jpg"
    assert cached.exists()
    server.stop()
    server.start()
    assert cached.exists()  # same settings: kept
    server.stop()
    server.sections["http"] = {"quality": 60}
    server.start()
    assert not cached.exists()
    assert "result cache: emptied" in server.log()


def test_bad_http_settings_stop_startup_with_one_line(make_server):
    server = make_server()
    server.sections["http"] = {"openross": {"enabled": "true", "prefix": "/r/"}}
    server.start(wait=False)
    assert server.process.wait(30) != 0
    assert "[http/openross] prefix = '/r/': already the prefix of [http/native]" in server.log()


def test_xmlrpc_still_works_beside_the_mounts(node):
    assert node.proxy().store_image(b64(picture(10, 10)), "rpc/x.jpg") == "OK"
    with pytest.raises(xmlrpc.client.Fault):
        node.proxy().store_image("!!!", "rpc/y.jpg")


def serving(origin, files):
    """``origin`` answering each of ``files`` ({path: bytes}) as a JPEG with an ETag."""
    for path, data in files.items():
        origin.routes[path] = image(data, ("Content-Type", "image/jpeg"),
                                    ("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"'))
    return origin


@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    master = serving(Origin(), {"/base/m.jpg": picture(200, 100),
                                "/base/slow.jpg": picture(10, 10),
                                "/base/huge.jpg": picture(800, 800, quality=100)})
    fallback = serving(Origin(), {"/base/f.jpg": picture(100, 200)})
    private = Origin("127.0.0.2")
    server = Server(tmp_path_factory.mktemp("origins"))
    server.sections["http"] = {
        "phizer": {"enabled": "true", "sizes": {"s": "50x50 max"}},
        "origins": {"master": master.url() + "base/",
                    "fallbacks": f"{fallback.url()}base/, {private.url()}base/",
                    "allow": "127.0.0.1/32", "read_timeout": "1", "max_bytes": "60KB"},
    }
    server.start()
    yield server, master, fallback, private
    server.stop()
    for origin in (master, fallback, private):
        origin.stop()


def test_origins_serve_from_the_master_then_the_fallbacks(origins):
    node, master, fallback, private = origins
    assert opened(get(node, "/phizer/s/m.jpg").body).size == (50, 25)
    assert opened(get(node, "/phizer/s/f.jpg").body).size == (25, 50)
    assert "/base/f.jpg" in master.paths() and "/base/f.jpg" in fallback.paths()
    assert private.paths() == []  # 127.0.0.2 is not allow-listed: never contacted
    again = len(master.paths())
    assert get(node, "/phizer/s/m.jpg").status == 200
    assert len(master.paths()) == again  # served from the result cache


@pytest.mark.parametrize("path, status, message", [
    # Missing on both allowed origins, and the third is refused: the refusal wins.
    ("/phizer/s/none.jpg", 502, "address refused"),
    ("/phizer/s/slow.jpg", 504, ""),
    ("/phizer/s/huge.jpg", 413, "max_bytes"),
])
def test_origin_failures_have_their_status(origins, path, status, message):
    node, master, _, _ = origins
    if "slow" in path:  # past the node's read_timeout of 1 s
        master.routes[path.replace("/phizer/s/", "/base/")] = delayed(2.0, image(IMAGE))
    response = get(node, path)
    assert response.status == status, response.body
    assert message in response.body.decode()
    assert get(node, "/phizer/s/m.jpg").status == 200


@pytest.mark.parametrize("access_log", ["-", "", "access.log"])
def test_the_access_log_goes_where_configured(make_server, access_log):
    server = make_server(network__access_log=access_log)
    server.root.joinpath("a.jpg").write_bytes(picture(20, 20))
    server.start()
    assert get(server, "/r/w:10/a.jpg").status == 200
    server.stop()  # every log is flushed and closed now
    line = '"GET /r/w:10/a.jpg HTTP/1.1" 200'
    logfile = server.base / "access.log"
    assert (line in server.log()) == (access_log == "-")
    assert (logfile.exists() and line in logfile.read_text()) == (access_log == "access.log")


@pytest.fixture(scope="module")
def in_processes(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("processes"), images__render_processes=2,
                    images__engine="pillow", http__cache_max_bytes=0)
    server.root.joinpath("a.jpg").write_bytes(picture(200, 100))
    server.root.joinpath("broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    server.start()
    yield server
    server.stop()


def children(server):
    import psutil

    return [child for child in psutil.Process(server.process.pid).children()
            if "imagepipe.imaging.processes" in " ".join(child.cmdline())]


def test_render_processes_answer_like_the_threads(in_processes):
    wait_for(lambda: len(children(in_processes)) == 2, what="two render processes")
    response = get(in_processes, "/r/w:50/f:png/a.jpg")
    assert response.status == 200 and opened(response.body).size == (50, 25)
    assert get(in_processes, "/r/w:50/missing.jpg").status == 404
    broken = get(in_processes, "/r/w:50/broken.jpg")
    assert broken.status == 422 and b"image" in broken.body
    assert get(in_processes, "/health").status == 200


def test_a_dead_render_process_is_replaced(in_processes):
    wait_for(lambda: len(children(in_processes)) == 2, what="two render processes")
    import psutil

    killed = children(in_processes)
    for child in killed:
        child.kill()
    wait_for(lambda: all(c.status() == psutil.STATUS_ZOMBIE for c in killed),
             what="the render processes to die")
    # The idle children were dead: each job goes to a new one.
    for width in (10, 11, 12, 13):
        assert get(in_processes, f"/r/w:{width}/a.jpg").status == 200
    wait_for(lambda: len(children(in_processes)) == 2, what="two new render processes")


def test_render_processes_stop_with_the_node(make_server):
    server = make_server(images__render_processes=1)
    server.start()
    wait_for(lambda: len(children(server)) == 1, what="the render process")
    [child] = children(server)
    server.stop()
    child.wait(10)


def test_animations_stay_animated_over_http(node):
    from PIL import Image as Picture

    frames = [Picture.new("RGB", (80, 60), colour) for colour in ((255, 0, 0), (0, 255, 0),
                                                                 (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=[100, 200, 300],
                   loop=0)
    node.root.joinpath("photos", "anim.gif").write_bytes(out.getvalue())
    gif = opened(get(node, "/r/w:40/photos/anim.gif").body)
    assert (gif.format, gif.size, gif.n_frames) == ("GIF", (40, 30), 3)
    assert durations(gif) == [100, 200, 300]
    webp = opened(get(node, "/r/w:40/f:webp/photos/anim.gif").body)
    assert (webp.format, webp.n_frames) == ("WEBP", 3)
    still = opened(get(node, "/r/w:40/f:jpg/photos/anim.gif").body)
    assert (still.format, still.size) == ("JPEG", (40, 30))


def test_openross_modes_compose_on_white_and_trim(node):
    from PIL import Image as Picture

    framed = Picture.new("RGB", (300, 200), (255, 255, 255))
    framed.paste((200, 20, 20), (100, 50, 200, 150))  # a 100x100 square in a white frame
    out = io.BytesIO()
    framed.save(out, "PNG")
    node.root.joinpath("photos", "framed.png").write_bytes(out.getvalue())
    comp = opened(get(node, "/openross/80/60/resizecomp/photos/wide.jpg").body).convert("RGB")
    assert comp.size == (80, 60)
    assert all(c > 245 for c in comp.getpixel((40, 2)))  # the white canvas above the picture
    trimmed = opened(get(node, "/openross/100/100/trimresize/photos/framed.png").body)
    trimmed = trimmed.convert("RGB")
    assert trimmed.size == (100, 100)
    red, green, blue = trimmed.getpixel((50, 50))
    assert red > 150 and green < 80 and blue < 80  # the square fills it: the frame was trimmed


def test_a_render_process_past_the_time_limit_is_stopped(make_server):
    import psutil

    server = make_server(images__render_processes=1)
    server.sections["imagemagick"] = {"env": {"MAGICK_TIME_LIMIT": 1}}
    server.root.joinpath("a.jpg").write_bytes(picture(100, 100))
    server.start()
    assert get(server, "/r/w:11/a.jpg").status == 200  # the child is up and serving
    [child] = children(server)
    child.suspend()  # stands for a render stuck inside a library
    response = get(server, "/r/w:10/a.jpg")
    assert response.status == 422 and b"MAGICK_TIME_LIMIT (1 s) reached" in response.body
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE
    assert get(server, "/r/w:10/a.jpg").status == 200  # a new one took its place


def test_render_processes_ignore_sigterm_while_the_node_drains(make_server):
    server = make_server(images__render_processes=1)
    server.root.joinpath("a.jpg").write_bytes(picture(100, 100))
    server.start()
    assert get(server, "/r/w:11/a.jpg").status == 200  # the child is up and serving
    [child] = children(server)
    child.terminate()  # what a service manager killing the whole group sends
    assert get(server, "/r/w:10/a.jpg").status == 200
    assert child.is_running()


def test_a_render_process_over_its_memory_is_replaced_after_answering(make_server):
    server = make_server(images__render_processes=1, images__render_process_memory="1MiB",
                         http__cache_max_bytes=0)
    server.root.joinpath("a.jpg").write_bytes(picture(100, 100))
    server.start()
    seen = set()
    for width in (10, 11, 12):
        assert get(server, f"/r/w:{width}/a.jpg").status == 200  # answered, then retired
        wait_for(lambda: len(children(server)) == 1, what="the next render process")
        seen.add(children(server)[0].pid)
    assert len(seen) == 3


def test_a_replaced_source_never_keeps_its_predecessors_etag(node):
    # Solid colours render to PNGs of one size: only the mtime can tell them apart, and
    # a replacement within the same second must still get a new tag.
    proxy, tags = node.proxy(), []
    for colour in ["red", "lime", "blue", "yellow", "red", "lime"]:
        data = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(data, "PNG")
        proxy.store_image(b64(data.getvalue()), "photos/solid.png")
        response = get(node, "/r/w:32/f:png/photos/solid.png")
        assert response.status == 200
        tags.append(response.getheader("ETag"))
        if len(tags) > 1:  # the old tag no longer matches
            assert get(node, "/r/w:32/f:png/photos/solid.png",
                       **{"If-None-Match": tags[-2]}).status == 200
    assert len(set(tags)) == len(tags), tags
