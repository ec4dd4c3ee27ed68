"""Pictures that are small on the wire and huge to decode, against a real node.

Each is refused from its bytes, before a decoder allocates anything, in both
engines: over XML-RPC with fault 1004 (a limit) or 1000 (not a picture)
naming why, on the fly with 422; nothing is written, and the node keeps
serving and keeps its memory.
"""

import http.client
import xmlrpc.client

import psutil
import pytest

from support.decoding import opened
from support.samples import jpeg_declaring, many_frames_gif, picture, picture_png, png_bomb
from support.server import b64

ENGINES = ["wand", "pillow"]


@pytest.fixture(scope="module", params=ENGINES)
def node(request, tmp_path_factory):
    from support.server import Server

    server = Server(tmp_path_factory.mktemp(f"bombs-{request.param}"),
                    images__engine=request.param, images__max_pending=16)
    (server.root / "bombs").mkdir()
    for name, data in hostile_files().items():
        (server.root / "bombs" / name).write_bytes(data)
    (server.root / "small.jpg").write_bytes(picture(640, 480))
    server.start()
    yield server
    server.stop()


def hostile_files():
    return {"ztxt.png": png_bomb(b"zTXt"), "itxt.png": png_bomb(b"iTXt"),
            "iccp.png": png_bomb(b"iCCP"), "zero.jpg": jpeg_declaring(0, 0),
            "hollow.jpg": jpeg_declaring(7000, 7000), "frames.gif": many_frames_gif(5000)}


def store_fault(node, data, size=None, path="out/x.png"):
    with pytest.raises(xmlrpc.client.Fault) as fault:
        node.proxy().store_image(b64(data), path, "", size)
    return fault.value


def get(node, path):
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def still_serving(node):
    assert node.proxy().store_image(b64(picture(40, 30)), "ok/fine.jpg", "", [20, 20]) == "OK"
    assert opened((node.root / "ok" / "fine.jpg").read_bytes()).size == (20, 15)


METADATA = "metadata (text, colour profile) inflates past max_metadata_bytes (4194304)"


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt", b"iCCP"])
@pytest.mark.parametrize("size", [None, [100, 100]], ids=["unchanged", "resized"])
def test_png_metadata_that_inflates_past_the_limit_is_refused(node, kind, size):
    fault = store_fault(node, png_bomb(kind), size)
    assert fault.faultCode == 1004 and METADATA in fault.faultString
    assert not (node.root / "out").exists()
    still_serving(node)


@pytest.mark.parametrize("name", ["ztxt.png", "itxt.png", "iccp.png"])
def test_on_the_fly_png_bombs_are_422_naming_the_limit(node, name):
    response = get(node, f"/r/w:50/bombs/{name}")
    assert (response.status, response.reason) == (422, "Unprocessable Content")
    assert response.body.startswith(b"422 Unprocessable Content: image: ")
    assert METADATA.encode() in response.body


def test_a_limit_raised_lets_the_metadata_through(make_server):
    server = make_server(images__max_metadata_bytes="300MiB").start()
    assert server.proxy().store_image(b64(png_bomb(b"zTXt", 8 << 20)), "big/meta.png", "",
                                      [1, 1]) == "OK"


@pytest.mark.parametrize("size", [None, [10, 10]], ids=["unchanged", "resized"])
def test_a_jpeg_declaring_zero_pixels_is_refused(node, size):
    fault = store_fault(node, jpeg_declaring(0, 0), size, "out/zero.jpg")
    assert fault.faultCode == 1000 and "image: declares a 0x0 picture" in fault.faultString
    assert not (node.root / "out").exists()
    response = get(node, "/r/w:50/bombs/zero.jpg")
    assert response.status == 422 and b"declares a 0x0 picture" in response.body


@pytest.mark.parametrize("size", [None, [100, 100]], ids=["unchanged", "resized"])
def test_a_jpeg_whose_scan_cannot_fill_its_frame_is_truncated(node, size):
    fault = store_fault(node, jpeg_declaring(7000, 7000), size, "out/hollow.jpg")
    assert fault.faultCode == 1000
    assert "JPEG data is truncated" in fault.faultString
    assert "where its frame needs at least 143664" in fault.faultString
    assert not (node.root / "out").exists()
    response = get(node, "/r/w:50/bombs/hollow.jpg")
    assert response.status == 422 and b"truncated" in response.body


def test_too_many_gif_frames_are_refused_from_the_blocks(node):
    fault = store_fault(node, many_frames_gif(5000), [10, 10], "out/frames.gif")
    assert fault.faultCode == 1004 and "501 frames exceed max_frames (500)" in fault.faultString
    assert get(node, "/r/w:2/bombs/frames.gif").status == 422


def test_enlarging_on_the_fly_stops_at_the_result_limits(node):
    response = get(node, "/r/w:7000/e:1/small.jpg")
    assert response.status == 422
    assert b"output 7000x5250 exceeds max_result_pixels (25000000)" in response.body
    response = get(node, "/r/w:9000/h:100/m:force/e:1/small.jpg")
    assert response.status == 422
    assert b"output 9000x100 exceeds max_result_side (8192)" in response.body
    assert get(node, "/r/w:4000/e:1/small.jpg").status == 200  # 12 MP: within both


def test_a_stored_variant_is_held_to_the_result_limits(node):
    with pytest.raises(xmlrpc.client.Fault) as raised:  # crop covers the box, enlarging
        node.proxy().store_image(b64(picture(400, 40)), "out/huge.png", "", [8300, 830], 0, 1)
    fault = raised.value
    assert fault.faultCode == 1004 and "max_result_side (8192)" in fault.faultString
    assert not (node.root / "out").exists()


def test_result_limits_are_settings(make_server):
    server = make_server(images__max_result_side=100, images__max_result_pixels="8KP")
    server.root.joinpath("small.jpg").write_bytes(picture(640, 480))
    server.start()
    assert get(server, "/r/w:100/small.jpg").status == 200  # 100x75 = 7500 px
    response = get(server, "/r/w:101/small.jpg")
    assert response.status == 422 and b"max_result_side (100)" in response.body
    response = get(server, "/r/w:100/h:100/m:pad/small.jpg")  # 10000 px
    assert response.status == 422 and b"max_result_pixels (8000)" in response.body


def test_the_source_stored_unchanged_is_not_a_result(make_server):
    server = make_server(images__max_result_side=100).start()
    data = picture_png(300, 200)
    assert server.proxy().store_image(b64(data), "kept/big.png") == "OK"
    assert (server.root / "kept" / "big.png").read_bytes() == data


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_returns_to_where_it_started_after_the_hostile_inputs(make_server, engine):
    server = make_server(images__engine=engine)
    (server.root / "bombs").mkdir()
    for name, data in hostile_files().items():
        (server.root / "bombs" / name).write_bytes(data)
    server.start()
    process = psutil.Process(server.process.pid)
    started = process.memory_info().rss
    for _ in range(3):
        for name, data in hostile_files().items():
            with pytest.raises(xmlrpc.client.Fault):
                server.proxy().store_image(b64(data), "out/x.png", "", [100, 100])
            assert get(server, f"/r/w:60/bombs/{name}").status in (400, 422)
    grown = process.memory_info().rss - started
    assert grown < 50 << 20, f"RSS grew by {grown >> 20} MiB"
    assert not (server.root / "out").exists()
