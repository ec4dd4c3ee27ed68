"""store_image / move_image / delete_image / image_info over real XML-RPC."""

import xmlrpc.client

import pytest

from support.decoding import opened
from support.samples import animated_gif, picture
from support.server import b64


def test_store_single_size_fits_inside_and_keeps_aspect(server):
    assert server.proxy().store_image(b64(picture(800, 400)), "fit/a.jpg", "", [200, 200]) == "OK"
    assert opened((server.root / "fit/a.jpg").read_bytes()).size == (200, 100)


def test_store_dict_of_sizes_writes_each_suffix_before_the_extension(server):
    sizes = {"": [500, 500], "_medium": [250, 250], "_small": [50, 50]}
    server.proxy().store_image(b64(picture(1000, 800)), "x/y/z/image.jpg", "", sizes)
    assert opened((server.root / "x/y/z/image.jpg").read_bytes()).size == (500, 400)
    assert opened((server.root / "x/y/z/image_medium.jpg").read_bytes()).size == (250, 200)
    assert opened((server.root / "x/y/z/image_small.jpg").read_bytes()).size == (50, 40)


def test_store_accepts_an_xmlrpc_base64_value(server):
    payload = xmlrpc.client.Binary(picture(300, 300))
    assert server.proxy().store_image(payload, "bin/a.jpg", "", [100, 100]) == "OK"
    assert opened((server.root / "bin/a.jpg").read_bytes()).size == (100, 100)


def test_store_accepts_numeric_strings_for_sizes(server):
    server.proxy().store_image(b64(picture(300, 150)), "num/a.jpg", "", ["100", "100"])
    assert opened((server.root / "num/a.jpg").read_bytes()).size == (100, 50)


def test_format_is_lower_cased_and_replaces_the_extension(server):
    server.proxy().store_image(b64(picture(100, 100)), "fmt/a.jpg", "PNG", [50, 50])
    image = opened((server.root / "fmt/a.png").read_bytes())
    assert image.format == "PNG" and image.size == (50, 50)
    assert not (server.root / "fmt/a.jpg").exists()


def test_format_composite_and_crop_dicts_apply_per_suffix(server):
    sizes = {"": [100, 100], "_c": [100, 100], "_p": [100, 100]}
    server.proxy().store_image(b64(picture(400, 200)), "per/a.jpg",
                               {"": "jpg", "_c": "webp", "_p": "png"}, sizes,
                               {"": 0, "_c": 0, "_p": 1}, {"": 0, "_c": 1, "_p": 0})
    assert opened((server.root / "per/a.jpg").read_bytes()).size == (100, 50)
    cropped = opened((server.root / "per/a_c.webp").read_bytes())
    assert cropped.format == "WEBP" and cropped.size == (100, 100)
    padded = opened((server.root / "per/a_p.png").read_bytes())
    assert padded.size == (100, 100) and padded.mode == "RGBA"


def test_no_size_and_no_format_stores_the_bytes_unchanged(server):
    data = animated_gif()
    server.proxy().store_image(b64(data), "orig/chi.gif")
    assert (server.root / "orig/chi.gif").read_bytes() == data


def test_delete_single_and_list_and_missing_is_fine(server):
    proxy = server.proxy()
    for name in ("a", "b", "c"):
        proxy.store_image(b64(picture(20, 20)), f"del/{name}.jpg")
    assert proxy.delete_image("del/a.jpg") == "OK"
    assert proxy.delete_image(["del/b.jpg", "del/c.jpg", "del/never.jpg"]) == "OK"
    assert sorted(p.name for p in (server.root / "del").iterdir()) == []


def test_move_single_and_lists_create_directories(server):
    proxy = server.proxy()
    for name in ("a", "b", "c"):
        proxy.store_image(b64(picture(20, 20)), f"mv/{name}.jpg")
    before = (server.root / "mv/a.jpg").read_bytes()
    assert proxy.move_image("mv/a.jpg", "mv/new/deep/a.jpg") == "OK"
    assert (server.root / "mv/new/deep/a.jpg").read_bytes() == before
    assert proxy.move_image(["mv/b.jpg", "mv/c.jpg"], ["mv2/b.jpg", "mv2/c.jpg"]) == "OK"
    assert not (server.root / "mv/b.jpg").exists() and (server.root / "mv2/c.jpg").exists()


def test_image_info_describes_a_stored_file(server):
    import hashlib
    proxy = server.proxy()
    proxy.store_image(b64(animated_gif()), "info/chi.gif")
    info = proxy.image_info("info/chi.gif")
    data = (server.root / "info/chi.gif").read_bytes()
    assert (info["width"], info["height"]) == opened(data).size
    assert info["format"] == "gif" and info["frames"] == opened(data).n_frames
    assert info["bytes"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["engine"] == "wand"
    assert {"jpg", "png", "gif", "webp"} <= set(info["engine_formats"])


def test_introspection_lists_and_documents_methods(server):
    proxy = server.proxy()
    methods = proxy.system.listMethods()
    assert {"store_image", "move_image", "delete_image", "image_info"} <= set(methods)
    assert "store_image(image, path" in proxy.system.methodHelp("store_image")


@pytest.mark.parametrize("method", ["nope", "store_image.__class__", "system.listMethods.x",
                                   "_store", "xmlrpc_store_image"])
def test_unknown_and_dotted_method_names_are_faults(server, method):
    with pytest.raises(xmlrpc.client.Fault) as fault:
        getattr(server.proxy(), method)()
    assert fault.value.faultCode == 1000
