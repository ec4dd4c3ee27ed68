"""The tree: all-or-nothing writes, modes, symlinks, moves, deletes, sweeping."""

import os
import stat
import subprocess
import sys

import pytest

from imagepipe.errors import ClientError, OperationFailed
from imagepipe.tree import TEMP_PREFIX, Tree


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    opened = Tree(str(root), 0o022)
    yield opened
    opened.close()


def everything(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_write_puts_every_file_in_place_and_describes_it(tree, tmp_path):
    change = tree.write([("a/b/one.jpg", b"1111"), ("a/b/two.jpg", b"22")])
    root = tmp_path / "root"
    assert (root / "a/b/one.jpg").read_bytes() == b"1111"
    assert change.operation == "store"
    assert [(w.path, w.size) for w in change.written] == [("a/b/one.jpg", 4), ("a/b/two.jpg", 2)]
    assert change.written[1].sha256 == (
        "785f3ec7eb32f30b90cd0fcf3657d388b5ff4297f2f9716ff66e9b69c05ddd09")


def test_a_failing_file_leaves_nothing_behind(tree, tmp_path):
    root = tmp_path / "root"
    tree.write([("x/file.jpg", b"old")])
    with pytest.raises(ClientError, match="not a directory"):
        tree.write([("new/dir/a.jpg", b"a"), ("x/b.jpg", b"b"), ("x/file.jpg/c.jpg", b"c")])
    assert everything(root) == ["x", "x/file.jpg"]
    assert (root / "x/file.jpg").read_bytes() == b"old"


def test_modes_follow_the_umask_per_file_and_directory(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    tree = Tree(str(root), 0o027)
    tree.write([("d/e/f.jpg", b"x")])
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "d/e").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "d/e/f.jpg").stat().st_mode) == 0o640
    tree.umask = 0o002
    tree.write([("d/g.jpg", b"x")])
    assert stat.S_IMODE((root / "d/g.jpg").stat().st_mode) == 0o664


def test_a_symlink_inside_the_tree_is_never_followed_out(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    os.symlink(outside, tmp_path / "root" / "link")
    with pytest.raises(ClientError, match="not a directory inside the tree"):
        tree.write([("link/evil.jpg", b"x")])
    with pytest.raises(ClientError):
        tree.read("link/secret.jpg")
    assert tree.open_file("link/secret.jpg") is None
    assert sorted(os.listdir(outside)) == ["secret.jpg"]


def test_a_symlinked_file_is_not_read_or_moved(tree, tmp_path):
    (tmp_path / "secret").write_bytes(b"secret")
    os.symlink(tmp_path / "secret", tmp_path / "root" / "file.jpg")
    with pytest.raises((ClientError, OperationFailed)):
        tree.read("file.jpg")
    with pytest.raises(ClientError, match="not a regular file"):
        tree.move([("file.jpg", "moved.jpg")])


def test_a_fifo_in_the_tree_does_not_block_a_reader(tree, tmp_path):
    os.mkfifo(tmp_path / "root" / "pipe.jpg")
    with pytest.raises(ClientError, match="not a regular file"):
        tree.read("pipe.jpg")


def test_move_checks_every_source_before_moving_any(tree, tmp_path):
    tree.write([("a.jpg", b"a")])
    with pytest.raises(OperationFailed, match=r"src_path\[1\]: no such image: 'b.jpg'"):
        tree.move([("a.jpg", "x/a.jpg"), ("b.jpg", "x/b.jpg")])
    assert everything(tmp_path / "root") == ["a.jpg"]


def test_move_creates_directories_and_replaces_the_target(tree, tmp_path):
    tree.write([("a.jpg", b"new"), ("deep/er/a.jpg", b"old")])
    change = tree.move([("a.jpg", "deep/er/a.jpg")])
    assert (tmp_path / "root/deep/er/a.jpg").read_bytes() == b"new"
    assert change.moved == (("a.jpg", "deep/er/a.jpg"),)


def test_delete_is_fine_with_missing_files_and_refuses_directories(tree, tmp_path):
    tree.write([("d/a.jpg", b"a")])
    change = tree.delete(["d/a.jpg", "d/none.jpg", "nodir/x.jpg"])
    assert change.deleted == ("d/a.jpg", "d/none.jpg", "nodir/x.jpg")
    assert everything(tmp_path / "root") == ["d"]
    with pytest.raises(ClientError, match="is a directory"):
        tree.delete(["d"])


def test_sweep_removes_temporary_files_of_earlier_runs_only(tree, tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir()
    (root / "a" / f"{TEMP_PREFIX}deadbeef.123").write_bytes(b"stale")
    mine = root / "a" / f"{TEMP_PREFIX}{tree.boot}.456"
    mine.write_bytes(b"in flight")
    (root / "a" / "keep.jpg").write_bytes(b"k")
    assert tree.sweep() == 1
    assert sorted(os.listdir(root / "a")) == sorted([mine.name, "keep.jpg"])


def test_a_write_cut_short_by_the_file_size_limit_leaves_nothing(tmp_path):
    """A real write error (EFBIG from RLIMIT_FSIZE) in the middle of a file."""
    root = tmp_path / "root"
    root.mkdir()
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from imagepipe.tree import Tree\n"
        "from imagepipe.errors import OperationFailed\n"
        f"tree = Tree({str(root)!r}, 0o022)\n"
        "try:\n"
        "    tree.write([('a/small.jpg', b'x' * 100), ('a/big.jpg', b'y' * 100000)])\n"
        "except OperationFailed as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert "path: cannot write 'a/big.jpg' (EFBIG)" in result.stdout
    assert everything(root) == []
