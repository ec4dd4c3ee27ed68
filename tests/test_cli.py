"""The ``imagepipe`` command's client subcommands against real nodes (the console script
run as a process)."""

import subprocess
import sys

import pytest

from support.decoding import opened
from support.samples import picture
from support.server import b64

pytestmark = pytest.mark.slow


def imagepipe(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "imagepipe.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kwargs)


def rpc(node):
    return node.url + "RPC2"


def test_store_info_move_delete_and_status(make_server, tmp_path):
    node = make_server(network__node_name="cli-node").start()
    (tmp_path / "a.jpg").write_bytes(picture(600, 400))
    done = imagepipe("store", tmp_path / "a.jpg", "c/a.jpg", "--size", "", 300, 300,
                     "--size", "_t 50 50 png crop", "--url", rpc(node))
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert opened((node.root / "c/a_t.png").read_bytes()).size == (50, 50)
    info = imagepipe("info", "c/a.jpg", "--url", rpc(node))
    assert info.returncode == 0 and "width: 300\n" in info.stdout
    assert imagepipe("move", "c/a.jpg", "d/b.jpg", "--url", rpc(node)).stdout == "OK\n"
    assert imagepipe("delete", "d/b.jpg", "c/a_t.png", "--url", rpc(node)).stdout == "OK\n"
    assert node.files() == []
    status = imagepipe("status", "--url", rpc(node))
    assert status.returncode == 0 and "node: cli-node\n" in status.stdout


def test_errors_are_one_line_with_a_non_zero_status(make_server, tmp_path):
    node = make_server().start()
    missing = imagepipe("info", "no/such.jpg", "--url", rpc(node))
    assert missing.returncode == 1
    assert missing.stderr == "imagepipe info: fault 1001: path: no such image: 'no/such.jpg'\n"
    gone = imagepipe("status", "--url", "http://127.0.0.1:9/RPC2")
    assert gone.returncode == 1 and len(gone.stderr.splitlines()) == 1
    assert gone.stderr.startswith("imagepipe status: ")
    bad = imagepipe("upload", tmp_path / "nothing-here", "--url", rpc(node))
    assert bad.returncode == 1 and bad.stderr == \
        f"imagepipe upload: {tmp_path / 'nothing-here'}: not a directory\n"


def test_upload_is_parallel_and_resumable(make_server, tmp_path):
    node = make_server().start()
    folder = tmp_path / "photos"
    for index in range(6):
        (folder / f"set{index % 2}").mkdir(parents=True, exist_ok=True)
        (folder / f"set{index % 2}" / f"{index}.jpg").write_bytes(picture(200 + index, 150))
    (folder / "notes.txt").write_text("not an image")
    first = imagepipe("upload", folder, "gallery", "--jobs", 3, "--size", "", 100, 100,
                      "--url", rpc(node))
    assert first.returncode == 0, first.stderr
    assert first.stdout == "OK: 6 stored, 0 already there, 0 failed\n"
    assert len(node.files()) == 6 and "gallery/set1/3.jpg" in node.files()
    (folder / "set0" / "6.jpg").write_bytes(picture(300, 150))
    again = imagepipe("upload", folder, "gallery", "--size", "", 100, 100, "--url", rpc(node))
    assert again.stdout == "OK: 1 stored, 6 already there, 0 failed\n"
    assert "upload" in again.stderr  # tqdm's bar


def test_verify_lists_what_is_missing_or_different_on_each_node(make_server):
    a, b = make_server().start(), make_server().start()
    for node in (a, b):
        node.proxy().store_image(b64(picture(100, 100)), "same.jpg", "jpg", {"": [50, 50]})
    a.proxy().store_image(b64(picture(120, 100)), "only-a.jpg", "jpg", {"": [50, 50]})
    b.proxy().store_image(b64(picture(130, 100)), "only-b.jpg", "jpg", {"": [50, 50]})
    a.proxy().store_image(b64(picture(140, 100)), "both.jpg", "jpg", {"": [50, 50]})
    b.proxy().store_image(b64(picture(150, 110)), "both.jpg", "jpg", {"": [60, 60]})
    done = imagepipe("verify", rpc(a), rpc(b))
    assert done.returncode == 1
    assert done.stdout == ("missing on B: only-a.jpg\nmissing on A: only-b.jpg\n"
                           "different: both.jpg\n"
                           "1 the same, 1 only on A, 1 only on B, 1 different\n")
    b.proxy().delete_image(["only-b.jpg", "both.jpg"])
    a.proxy().delete_image(["only-a.jpg", "both.jpg"])
    same = imagepipe("verify", rpc(a), rpc(b))
    assert (same.returncode, same.stdout) == (0, "1 the same, 0 only on A, 0 only on B, "
                                                 "0 different\n")


def test_the_manifest_pages_through_a_tree(make_server):
    node = make_server().start()
    proxy = node.proxy()
    for index in range(5):
        proxy.store_image(b64(picture(40, 40)), f"p/{index}/x.jpg", "jpg", {"": [20, 20]})
    paths, after = [], ""
    while True:
        page = proxy.image_manifest(after, 2)
        paths += [path for path, _, _ in page["entries"]]
        after = page["next"]
        if not after:
            break
    assert paths == [f"p/{index}/x.jpg" for index in range(5)]
    with pytest.raises(Exception, match="limit: expected a whole number from 1 to 1000"):
        proxy.image_manifest("", 0)


def test_upload_resumes_when_the_variants_change_format(make_server, tmp_path):
    node = make_server().start()
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.jpg").write_bytes(picture(200 + index, 150))
    sizes = ("--size", "_w 80 80 webp", "--size", "_p 40 40 png")
    first = imagepipe("upload", folder, "fmt", *sizes, "--url", rpc(node))
    assert first.stdout == "OK: 3 stored, 0 already there, 0 failed\n", first.stderr
    assert "fmt/0_w.webp" in node.files() and "fmt/2_p.png" in node.files()
    again = imagepipe("upload", folder, "fmt", *sizes, "--url", rpc(node))
    assert again.stdout == "OK: 0 stored, 3 already there, 0 failed\n"
