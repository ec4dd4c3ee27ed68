"""Hostile requests against a real node: each gets a clear answer, nothing is
written, and the node keeps serving."""

import base64
import concurrent.futures
import signal
import socket
import subprocess
import xmlrpc.client

import pytest

from support.decoding import opened
from support.samples import photo, picture
from support.server import b64

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<methodCall><methodName>delete_image</methodName><params><param><value><string>&lol3;
</string></value></param></params></methodCall>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>delete_image</methodName><params><param><value><string>&xxe;
</string></value></param></params></methodCall>"""


def raw_post(port, head, body=b"", read=True):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + body)
        if not read:
            return b""
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def post_xml(server, body):
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return raw_post(server.port, head, body)


def fault_of(call):
    with pytest.raises(xmlrpc.client.Fault) as fault:
        call()
    return fault.value


def test_declared_oversized_body_is_refused_from_the_headers(server):
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 10000000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(head)  # no body at all: the answer cannot depend on it
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"exceeds max_request_bytes (67108864)" in answer


def test_chunked_body_growing_past_the_limit_is_cut_off(make_server):
    node = make_server(network__max_request_bytes="64KiB").start()
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (32768, b"a" * 32768)
    answer = raw_post(node.port, head, chunk * 3)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"max_request_bytes (65536)" in answer
    assert node.proxy().delete_image("still/serving.jpg") == "OK"


def test_a_client_upload_over_the_limit_sees_413(make_server):
    node = make_server(network__max_request_bytes="256KiB").start()
    with pytest.raises(xmlrpc.client.ProtocolError) as error:
        node.proxy().store_image(b64(photo()), "big.jpg")
    assert error.value.errcode == 413
    assert node.files() == []


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_entity_tricks_are_refused(server, body):
    answer = post_xml(server, body)
    assert b"<int>1000</int>" in answer and b"DTDs and entities are not allowed" in answer
    assert b"root:" not in answer


def test_malformed_xml_is_a_client_fault(server):
    answer = post_xml(server, b"<methodCall><methodName>x</methodName><params>")
    assert b"<int>1000</int>" in answer and b"cannot parse XML-RPC request" in answer


@pytest.mark.parametrize("payload,path,message", [
    (b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://127.0.0.1/x.jpg\"|touch "
     b"/tmp/tragick\")'\npop graphic-context\n", "tragick.jpg", "not an allowed image type"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg.jpg", "not an allowed image type"),
    (b"%PDF-1.4\n%%EOF\n", "pdf.jpg", "not an allowed image type"),
    (None, "trunc.jpg", "truncated"),
])
def test_hostile_payloads_are_refused_and_nothing_is_written(server, payload, path, message):
    if payload is None:
        payload = photo(5312, 2988, quality=85, progressive=True, subsampling="4:2:0")[:200_000]
    fault = fault_of(lambda: server.proxy().store_image(b64(payload), f"hostile/{path}",
                                                        "", [10, 10]))
    assert fault.faultCode == 1000 and message in fault.faultString
    assert not (server.root / "hostile").exists()


@pytest.mark.parametrize("path", ["../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "a\x7f.jpg",
                                  "a\\b.jpg", ".hidden.jpg", "a/" + "x" * 300 + ".jpg",
                                  "a/\x85.jpg", "a/\u2028.jpg"])
def test_hostile_paths_are_client_faults(server, path):
    fault = fault_of(lambda: server.proxy().store_image(b64(picture(8, 8)), path))
    assert fault.faultCode == 1000 and fault.faultString.startswith("path: ")


@pytest.mark.parametrize("path", ["a\x00.jpg", "a/\x1b.jpg"])
def test_control_characters_xml_cannot_carry_are_refused_by_the_parser(server, path):
    fault = fault_of(lambda: server.proxy().store_image(b64(picture(8, 8)), path))
    assert fault.faultCode == 1000 and "cannot parse XML-RPC request" in fault.faultString


def test_a_suffix_smuggling_a_path_is_refused(server):
    fault = fault_of(lambda: server.proxy().store_image(
        b64(picture(8, 8)), "s/a.jpg", "", {"/../../../etc/evil": [4, 4]}))
    assert fault.faultCode == 1000 and "must not contain a slash" in fault.faultString
    assert not (server.root / "s").exists()


def test_limits_are_named_in_too_large_faults(make_server):
    node = make_server(images__max_pixels="1MP").start()
    fault = fault_of(lambda: node.proxy().store_image(
        b64(photo()), "k.jpg", "", [100, 100]))
    assert fault.faultCode == 1004
    assert "6028x3391 = 20440948 pixels exceed max_pixels (1000000)" in fault.faultString
    assert node.files() == []


def test_missing_source_of_a_move_is_an_operation_failure(server):
    fault = fault_of(lambda: server.proxy().move_image("no/such.jpg", "x.jpg"))
    assert fault.faultCode == 1001 and "no such image: 'no/such.jpg'" in fault.faultString


def test_move_lists_of_unequal_length_are_refused(server):
    fault = fault_of(lambda: server.proxy().move_image(["a.jpg", "b.jpg"], ["c.jpg"]))
    assert fault.faultCode == 1000 and "Number of source paths should match" in fault.faultString


@pytest.mark.slow
def test_calls_beyond_capacity_are_busy_and_write_nothing(make_server):
    node = make_server(images__io_threads=1, images__max_pending=1).start()
    slow = b64(photo(5640, 3172, quality=100))  # to a 3000 px PNG: seconds of work

    def store(payload, path, size):
        try:
            return node.proxy().store_image(payload, path, "", size)
        except xmlrpc.client.Fault as fault:
            # A copy without the traceback, which would keep this call's
            # connection open (its frames hold the proxy) for the whole test.
            return xmlrpc.client.Fault(fault.faultCode, fault.faultString)

    outcomes = {}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = {f"busy/slow{i}.png": pool.submit(store, slow, f"busy/slow{i}.png",
                                                    [3000, 3000]) for i in range(2)}
        quick = 0
        while not all(call.done() for call in running.values()):
            quick += 1
            path = f"busy/quick{quick}.jpg"
            outcomes[path] = store(b64(picture(8, 8)), path, None)
        outcomes.update((path, call.result()) for path, call in running.items())
    refused = [o for o in outcomes.values() if o != "OK"]
    assert refused, "no call was refused while the thread and the queue were full"
    assert {fault.faultCode for fault in refused} == {1003}
    assert "retry later" in refused[0].faultString
    assert set(node.files()) == {path for path, o in outcomes.items() if o == "OK"}


def test_32_concurrent_calls_all_succeed(server):
    sources = {index: picture(200 + index, 100) for index in range(32)}

    def store(index):
        return server.proxy().store_image(b64(sources[index]), f"many/{index}.jpg", "png",
                                          [100, 100])

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        assert list(pool.map(store, range(32))) == ["OK"] * 32
    for index in range(32):
        assert opened((server.root / f"many/{index}.png").read_bytes()).size[0] == 100


@pytest.mark.slow
def test_a_full_disk_is_a_clean_failure(make_server, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    big = photo(4224, 3168, quality=85, progressive=True)  # megabytes: cannot fit
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    node = make_server(images__path=str(mount))
    try:
        node.start()
        fault = fault_of(lambda: node.proxy().store_image(b64(big), "full/a.jpg"))
        assert fault.faultCode == 1001 and "no space left" in fault.faultString
        # Nothing of the image; only the result cache's index (made at start-up).
        left = [p for p in mount.rglob("*") if ".imagepipe" not in p.relative_to(mount).parts]
        assert left == []
        assert node.proxy().store_image(b64(picture(16, 16)), "ok.jpg") == "OK"
    finally:
        node.stop(signal.SIGKILL)
        subprocess.run(["umount", str(mount)], check=True)


def test_symlinked_directory_in_the_tree_is_refused(server, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (server.root / "escape").symlink_to(outside)
    fault = fault_of(lambda: server.proxy().store_image(b64(picture(8, 8)), "escape/x.jpg"))
    assert fault.faultCode == 1000
    assert list(outside.iterdir()) == []


@pytest.fixture
def credentials(tmp_path):
    basic = tmp_path / "users"
    basic.write_text("# user:password\nalice:s3cret\n")
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-123\n")
    return basic, tokens


def test_basic_auth_refuses_missing_and_wrong_credentials(make_server, credentials):
    node = make_server(network__auth="basic", network__auth_file=credentials[0]).start()
    for url in (node.url, node.url.replace("http://", "http://alice:wrong@")):
        with pytest.raises(xmlrpc.client.ProtocolError) as error:
            xmlrpc.client.ServerProxy(url).delete_image("a.jpg")
        assert error.value.errcode == 401
    good = xmlrpc.client.ServerProxy(node.url.replace("http://", "http://alice:s3cret@"))
    assert good.delete_image("a.jpg") == "OK"


def test_token_auth(make_server, credentials):
    node = make_server(network__auth="token", network__auth_file=credentials[1]).start()
    body = xmlrpc.client.dumps(("a.jpg",), "delete_image").encode()
    head = ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nConnection: close\r\n"
            "Authorization: Bearer {}\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert raw_post(node.port, head.format("nope").encode(), body).startswith(b"HTTP/1.1 401")
    answer = raw_post(node.port, head.format("tok-123").encode(), body)
    assert answer.startswith(b"HTTP/1.1 200") and b"OK" in answer


def test_base64_value_that_is_not_base64_is_a_client_fault(server):
    fault = fault_of(lambda: server.proxy().store_image("%%%", "a.jpg"))
    assert fault.faultCode == 1000 and fault.faultString == "image: Invalid image encoding, should be base64"


def test_an_empty_payload_is_refused(server):
    fault = fault_of(lambda: server.proxy().store_image("", "empty.jpg"))
    assert fault.faultCode == 1000 and fault.faultString == "image: empty payload"


def test_random_bytes_are_refused(server):
    fault = fault_of(lambda: server.proxy().store_image(
        base64.b64encode(bytes(range(256)) * 8).decode(), "rnd.jpg"))
    assert fault.faultCode == 1000 and "not an allowed image type" in fault.faultString


@pytest.mark.parametrize("method,argument", [
    ("methodHelp", 5), ("methodHelp", ["store_image"]), ("methodSignature", {"a": 1}),
])
def test_introspection_with_a_non_string_is_a_client_error(server, method, argument):
    fault = fault_of(lambda: getattr(server.proxy().system, method)(argument))
    assert fault.faultCode == 1000 and "method: expected a method name (a string)" in \
        fault.faultString


def test_arguments_nested_too_deep_are_a_client_error_naming_them(server):
    # {"quality": {"x": {"x": ...}}}, 1,000 levels, written by hand: xmlrpc.client
    # itself cannot marshal that deep.
    options = "<struct><member><name>quality</name><value>" + \
        "<struct><member><name>x</name><value>" * 1000 + "<int>1</int>" + \
        "</value></member></struct>" * 1001
    head = xmlrpc.client.dumps((b64(picture(8, 8)), "deep/x.jpg", "", [4, 4], 0, 0),
                               "store_image").rsplit("</params>", 1)[0]
    body = f"{head}<param><value>{options}</value></param></params></methodCall>".encode()
    answer = post_xml(server, body)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert fault.value.faultCode == 1000
    assert fault.value.faultString == "options: arrays and structs nested deeper than 8 levels"
    deep = [[[[[[[[["x.jpg"]]]]]]]]]
    refused = fault_of(lambda: server.proxy().delete_image(deep))
    assert refused.faultCode == 1000 and refused.faultString.startswith("path: arrays and ")
    assert not (server.root / "deep").exists()
