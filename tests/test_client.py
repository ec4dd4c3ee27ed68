"""examples/client.py, run as a subprocess against a real imagepipe process."""

import subprocess
import sys

from support.decoding import opened
from support.net import free_port
from support.samples import picture
from support.server import ROOT

CLIENT = ROOT / "examples" / "client.py"


def run_client(port, *args, **kwargs):
    """Run the client with ``args``; the completed process (text output)."""
    return subprocess.run([sys.executable, str(CLIENT), "--port", str(port), *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kwargs)


def write_picture(path, width, height, fmt="JPEG"):
    """Write a generated picture to ``path`` and return its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = picture(width, height, fmt=fmt)
    path.write_bytes(data)
    return data


def stored(server, path):
    """The stored file at ``path``, decoded with Pillow."""
    return opened((server.root / path).read_bytes())


def test_sizes_as_words_or_one_string_write_every_variant(server, tmp_path):
    write_picture(tmp_path / "a.jpg", 1000, 800)
    done = run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "cli/s/image.jpg",
                      "--size", "", 500, 500, "--size", "_medium 250 250",
                      "--size", "_small", 50, 50, "png", "crop")
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert stored(server, "cli/s/image.jpg").size == (500, 400)
    assert stored(server, "cli/s/image_medium.jpg").size == (250, 200)
    small = stored(server, "cli/s/image_small.png")
    assert (small.format, small.size) == ("PNG", (50, 50))
    assert not (server.root / "cli/s/image_small.jpg").exists()


def test_dash_suffix_means_none_and_format_applies_to_every_variant(server, tmp_path):
    write_picture(tmp_path / "a.jpg", 400, 200)
    done = run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "cli/f/a.jpg",
                      "--size", "-", 100, 100, "--size", "_t", 20, 20, "--format", "webp")
    assert done.returncode == 0, done.stderr
    assert stored(server, "cli/f/a.webp").size == (100, 50)
    assert stored(server, "cli/f/a_t.webp").format == "WEBP"


def test_composite_pads_to_the_exact_size_on_a_transparent_canvas(server, tmp_path):
    write_picture(tmp_path / "a.jpg", 400, 200)
    done = run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "cli/c/a.png",
                      "--size", "-", 100, 100, "--composite")
    assert done.returncode == 0, done.stderr
    padded = stored(server, "cli/c/a.png")
    assert (padded.size, padded.mode) == ((100, 100), "RGBA")
    assert padded.getpixel((50, 5))[3] == 0 and padded.getpixel((50, 50))[3] == 255


def test_upload_without_size_stores_the_bytes_unchanged(server, tmp_path):
    data = write_picture(tmp_path / "orig.jpg", 64, 48)
    done = run_client(server.port, "--upload", tmp_path / "orig.jpg",
                      "--remote-path", "cli/u/orig.jpg")
    assert done.returncode == 0, done.stderr
    assert (server.root / "cli/u/orig.jpg").read_bytes() == data


def test_delete_removes_the_remote_file(server, tmp_path):
    write_picture(tmp_path / "a.jpg", 32, 32)
    run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "cli/d/a.jpg")
    assert (server.root / "cli/d/a.jpg").exists()
    done = run_client(server.port, "-d", "--remote-path", "cli/d/a.jpg")
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert not (server.root / "cli/d/a.jpg").exists()


def test_move_renames_into_new_directories(server, tmp_path):
    data = write_picture(tmp_path / "a.jpg", 32, 32)
    run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "cli/m/a.jpg")
    done = run_client(server.port, "-m", "cli/m/deep/er/b.jpg", "--remote-path", "cli/m/a.jpg")
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert not (server.root / "cli/m/a.jpg").exists()
    assert (server.root / "cli/m/deep/er/b.jpg").read_bytes() == data


def test_info_prints_the_dimensions_of_a_stored_image(server, tmp_path):
    write_picture(tmp_path / "a.png", 30, 20, fmt="PNG")
    run_client(server.port, "-i", tmp_path / "a.png", "--remote-path", "cli/i/a.png")
    done = run_client(server.port, "--info", "--remote-path", "cli/i/a.png")
    assert done.returncode == 0, done.stderr
    assert {"width: 30", "height: 20", "format: png"} <= set(done.stdout.splitlines())


def test_dir_uploads_every_image_keeping_relative_paths_with_progress(server, tmp_path):
    folder = tmp_path / "photos"
    write_picture(folder / "top.jpg", 300, 300)
    write_picture(folder / "sub" / "one.png", 300, 150, fmt="PNG")
    write_picture(folder / "sub" / "deeper" / "two.gif", 150, 300, fmt="GIF")
    (folder / "notes.txt").write_text("not an image")
    write_picture(folder / ".hidden" / "skip.jpg", 10, 10)
    done = run_client(server.port, "--dir", folder, "--remote-path", "cli/dir",
                      "--size", "-", 100, 100)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "OK (3 files)\n"
    assert sorted(p for p in server.files() if p.startswith("cli/dir/")) == [
        "cli/dir/sub/deeper/two.gif", "cli/dir/sub/one.png", "cli/dir/top.jpg"]
    assert stored(server, "cli/dir/top.jpg").size == (100, 100)
    assert stored(server, "cli/dir/sub/one.png").size == (100, 50)
    assert stored(server, "cli/dir/sub/deeper/two.gif").size == (50, 100)
    assert "0/3   0%" in done.stderr and "3/3 100%" in done.stderr


def test_dir_continues_past_a_failed_file_and_exits_1(server, tmp_path):
    folder = tmp_path / "mixed"
    write_picture(folder / "a.jpg", 40, 40)
    (folder / "b.jpg").write_bytes(b"this is not a jpeg")
    write_picture(folder / "c.jpg", 40, 40)
    done = run_client(server.port, "--dir", folder, "--remote-path", "cli/mixed")
    assert done.returncode == 1
    assert [p for p in server.files() if p.startswith("cli/mixed/")] == [
        "cli/mixed/a.jpg", "cli/mixed/c.jpg"]
    assert "FAILED b.jpg: fault 1000:" in done.stderr
    assert "1 of 3 files failed" in done.stderr


def test_fault_exits_1_with_the_fault_code_and_message(server, tmp_path):
    write_picture(tmp_path / "a.jpg", 32, 32)
    done = run_client(server.port, "-i", tmp_path / "a.jpg", "--remote-path", "../escape.jpg")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: fault 1000: path")


def test_unreachable_server_exits_1_naming_the_problem():
    done = run_client(free_port(), "-d", "--remote-path", "x.jpg")
    assert done.returncode == 1
    assert "cannot reach the server" in done.stderr


def test_bad_size_is_a_usage_error():
    done = run_client(free_port(), "-i", "x.jpg", "--size", "-", "wide", 10)
    assert done.returncode == 2
    assert "width and height must be whole numbers" in done.stderr


def test_bearer_token_is_sent_and_a_missing_one_is_refused(make_server, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    node = make_server(network__auth="token", network__auth_file=str(tokens)).start()
    write_picture(tmp_path / "a.jpg", 32, 32)
    refused = run_client(node.port, "-i", tmp_path / "a.jpg", "--remote-path", "t/a.jpg")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    done = run_client(node.port, "--token", "s3cret-token", "-i", tmp_path / "a.jpg",
                      "--remote-path", "t/a.jpg")
    assert done.returncode == 0, done.stderr
    assert (node.root / "t/a.jpg").exists()


def test_basic_credentials_are_sent_and_a_wrong_password_is_refused(make_server, tmp_path):
    users = tmp_path / "users"
    users.write_text("ed:p@ss:w/rd\n")
    node = make_server(network__auth="basic", network__auth_file=str(users)).start()
    write_picture(tmp_path / "a.jpg", 32, 32)
    refused = run_client(node.port, "--user", "ed", "--password", "nope", "-i",
                         tmp_path / "a.jpg", "--remote-path", "b/a.jpg")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert "nope" not in refused.stderr
    done = run_client(node.port, "--user", "ed", "--password", "p@ss:w/rd", "-i",
                      tmp_path / "a.jpg", "--remote-path", "b/a.jpg")
    assert done.returncode == 0, done.stderr
    assert (node.root / "b/a.jpg").exists()
