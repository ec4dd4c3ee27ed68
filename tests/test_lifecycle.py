"""A node's life: start-up sweep, file modes, SIGHUP reload, SIGTERM drain, /images/."""

import concurrent.futures
import json
import os
import signal
import stat
import urllib.error
import urllib.request
import xmlrpc.client

import pytest

from support.decoding import opened
from support.net import wait_for
from support.samples import photo, picture
from support.server import b64
from imagepipe.tree import TEMP_PREFIX


def test_startup_removes_leftover_temporary_files(make_server):
    node = make_server()
    (node.root / "a").mkdir()
    stale = node.root / "a" / f"{TEMP_PREFIX}cafe0000.0123456789ab"
    stale.write_bytes(b"half written")
    node.start()
    wait_for(lambda: not stale.exists(), what="the stale temporary file to go")
    assert "removed 1 temporary files" in node.log()


def test_files_and_directories_get_modes_from_the_umask(make_server):
    node = make_server(images__umask="0027").start()
    node.proxy().store_image(b64(picture(10, 10)), "m/n/a.jpg")
    assert stat.S_IMODE((node.root / "m").stat().st_mode) == 0o750
    assert stat.S_IMODE((node.root / "m/n/a.jpg").stat().st_mode) == 0o640


def test_transliterated_paths_are_used_by_every_call(make_server):
    node = make_server(images__transliterate_paths="true").start()
    proxy = node.proxy()
    proxy.store_image(b64(picture(10, 10)), "zdjęcia/żółw.jpg")
    assert node.files() == ["zdjecia/zolw.jpg"]
    assert proxy.image_info("zdjęcia/żółw.jpg")["path"] == "zdjecia/zolw.jpg"
    proxy.move_image("zdjęcia/żółw.jpg", "zdjęcia/ślimak.jpg")
    assert node.files() == ["zdjecia/slimak.jpg"]
    proxy.delete_image("zdjęcia/ślimak.jpg")
    assert node.files() == []


def test_utf8_paths_are_stored_as_given(server):
    server.proxy().store_image(b64(picture(10, 10)), "utf/zdjęcia/żółw.jpg")
    assert (server.root / "utf/zdjęcia/żółw.jpg").exists()


def status(node, query=""):
    with urllib.request.urlopen(node.url + "status" + query, timeout=20) as response:
        return json.load(response)


def test_status_reports_calls_in_flight(server):
    assert status(server)["in_flight"] == 0 and status(server)["capacity"] >= 2


def test_status_reports_how_late_the_reactor_runs(server):
    wait_for(lambda: status(server)["reactor_lag"]["ticks"] >= 150, what="1.5 s of ticks")
    lag = status(server)["reactor_lag"]
    assert set(lag) == {"ticks", "p50_ms", "p99_ms", "max_ms"} and lag["ticks"] >= 150
    assert 0 <= lag["p50_ms"] and lag["max_ms"] < 1000  # an idle node fires on time
    assert status(server, "?lag_seconds=1")["reactor_lag"]["ticks"] == 100
    with pytest.raises(urllib.error.HTTPError) as refused:
        status(server, "?lag_seconds=0")
    assert refused.value.code == 400 and b"lag_seconds" in refused.value.read()


@pytest.mark.slow
def test_sigterm_lets_calls_in_flight_finish(make_server):
    node = make_server(images__io_threads=2).start()
    payload = b64(photo(4224, 3168, quality=85, progressive=True))  # to a 4000 px PNG: seconds of work
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(node.proxy().store_image, payload, f"drain/{i}.png", "",
                             [4000, 4000]) for i in range(2)]
        wait_for(lambda: status(node)["in_flight"] == 2, what="two calls in flight")
        node.send(signal.SIGTERM)
        assert [call.result(timeout=60) for call in calls] == ["OK", "OK"]
    # twistd ends by re-raising the signal it was stopped with, once shut down cleanly
    assert node.process.wait(60) == -signal.SIGTERM
    assert sorted(node.files()) == ["drain/0.png", "drain/1.png"]
    assert "draining 2 calls in flight" in node.log()


def test_sighup_reloads_limits_and_moves_the_port(make_server):
    node = make_server().start()
    data = b64(photo())
    assert node.proxy().store_image(data, "before.jpg", "", [10, 10]) == "OK"
    old_port = node.port
    node.sections["images"]["max_pixels"] = "1MP"
    node.port = node.sections["network"]["port"] = _free_other_port(old_port)
    node.write_config()
    node.send(signal.SIGHUP)
    node.wait_listening(node.port)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        node.proxy().store_image(data, "after.jpg", "", [10, 10])
    assert fault.value.faultCode == 1004 and "max_pixels (1000000)" in fault.value.faultString
    assert "configuration reloaded" in node.log()
    with pytest.raises(OSError):
        xmlrpc.client.ServerProxy(f"http://127.0.0.1:{old_port}/").delete_image("x.jpg")


def test_a_bad_reload_keeps_the_running_config(make_server):
    node = make_server().start()
    node.sections["images"]["umask"] = "banana"
    node.write_config()
    node.send(signal.SIGHUP)
    wait_for(lambda: "reload refused" in node.log(), what="the refusal in the log")
    assert node.proxy().store_image(b64(picture(8, 8)), "still.jpg") == "OK"


def test_a_reload_says_when_http_settings_wait_for_a_restart(make_server):
    node = make_server().start()
    node.sections["http"] = {"quality": 50}
    node.write_config()
    node.send(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in node.log(), what="the reload")
    assert "[http] or a dialect's section changed: takes effect after a restart" in node.log()


def test_a_reload_names_each_section_that_waits_for_a_restart(make_server):
    node = make_server().start()
    node.sections.setdefault("metrics", {})["statsd"] = "127.0.0.1:8125"
    node.sections.setdefault("errors", {})["environment"] = "staging"
    node.sections["network"]["node_name"] = "renamed"
    node.sections["network"]["max_request_bytes"] = "1MiB"  # applied: no warning
    node.write_config()
    node.send(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in node.log(), what="the reload")
    warned = [line.partition("] ")[2] for line in node.log().splitlines()
              if "takes effect after a restart" in line]
    assert sorted(warned) == sorted(f"{what} changed: takes effect after a restart" for what in
                                    ("[metrics]", "[errors]", "[network] node_name"))


def _free_other_port(port):
    from support.net import free_port
    while True:
        candidate = free_port()
        if candidate != port:
            return candidate


def fetch(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_images_are_served_read_only_with_type_and_validators(server):
    server.proxy().store_image(b64(picture(64, 64)), "web/a.jpg", "png")
    status, headers, body = fetch(server.url + "images/web/a.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == (server.root / "web/a.png").read_bytes()
    assert headers["ETag"] and headers["Last-Modified"]
    assert fetch(server.url + "images/web/a.png", {"If-None-Match": headers["ETag"]})[0] == 304
    assert fetch(server.url + "images/web/a.png",
                 {"If-Modified-Since": headers["Last-Modified"]})[0] == 304


@pytest.mark.parametrize("path", ["images/web/", "images/web", "images/", "images/.hidden",
                                  "images/web/%2e%2e/%2e%2e/etc/passwd", "images/nope.jpg"])
def test_no_listings_dotfiles_or_escapes(server, path):
    server.proxy().store_image(b64(picture(8, 8)), "web/b.jpg")
    (server.root / ".hidden").write_bytes(b"secret")
    status, _, body = fetch(server.url + path)
    assert status == 404 and b"secret" not in body and b"b.jpg" not in body


def test_serving_does_not_follow_a_symlink_out_of_the_root(server, tmp_path):
    (tmp_path / "passwd").write_bytes(b"root:x:0:0")
    (server.root / "link.jpg").symlink_to(tmp_path / "passwd")
    assert fetch(server.url + "images/link.jpg")[0] == 404


def test_head_gives_headers_only(server):
    server.proxy().store_image(b64(picture(8, 8)), "web/h.jpg")
    request = urllib.request.Request(server.url + "images/web/h.jpg", method="HEAD")
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.status == 200 and response.read() == b""
        assert int(response.headers["Content-Length"]) == os.path.getsize(
            server.root / "web/h.jpg")


def test_rpc2_path_is_an_alias_of_the_root(server):
    proxy = xmlrpc.client.ServerProxy(server.url + "RPC2")
    assert proxy.store_image(b64(picture(30, 30)), "rpc2/a.jpg", "", [10, 10]) == "OK"
    assert opened((server.root / "rpc2/a.jpg").read_bytes()).size == (10, 10)


def refused_anonymously(proxy):
    """True once a call without credentials is answered 401 (a read: it changes nothing)."""
    try:
        proxy.image_info("u/before.jpg")
    except xmlrpc.client.ProtocolError as error:
        return error.errcode == 401
    return False


def test_sighup_applies_a_new_umask_and_turns_auth_on(make_server, tmp_path):
    node = make_server().start()
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-1\n")
    node.sections["images"]["umask"] = "0077"
    node.sections["network"].update(auth="token", auth_file=str(tokens))
    proxy = node.proxy()
    assert proxy.store_image(b64(picture(8, 8)), "u/before.jpg") == "OK"
    node.write_config()
    node.send(signal.SIGHUP)
    wait_for(lambda: refused_anonymously(proxy), what="the reload to turn auth on")
    with pytest.raises(xmlrpc.client.ProtocolError) as error:
        proxy.store_image(b64(picture(8, 8)), "u/refused.jpg")
    assert error.value.errcode == 401
    authorised = xmlrpc.client.ServerProxy(node.url, headers=[("Authorization",
                                                               "Bearer tok-1")])
    assert authorised.store_image(b64(picture(8, 8)), "u/after.jpg") == "OK"
    assert stat.S_IMODE((node.root / "u/after.jpg").stat().st_mode) == 0o600
    assert stat.S_IMODE((node.root / "u/before.jpg").stat().st_mode) == 0o644
    assert not (node.root / "u/refused.jpg").exists()


def test_a_port_in_use_stops_start_up_with_one_line(make_server):
    import socket

    node = make_server()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.port))
        taken.listen()
        node.start(wait=False)
        assert node.process.wait(60) == 1
    assert "imagepipe: Couldn't listen on 127.0.0.1:" in node.log()
    assert "Address already in use" in node.log()
