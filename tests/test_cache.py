"""The result cache on its own: names, store and lookup, invalidation, LRU, reconcile."""

import os
import time

import pytest

from imagepipe.web.cache import ResultCache, cache_name


class Clock:
    """Wall-clock seconds (compared with file access times), a second per call."""

    def __init__(self):
        self.now = time.time() + 10  # ahead of the files' own times

    def __call__(self):
        self.now += 1
        return self.now


@pytest.fixture
def cache(tmp_path):
    made = ResultCache(str(tmp_path / "cache"), max_bytes=1000, clock=Clock())
    yield made
    made.close()


def files(cache):
    found = []
    for directory, _, names in os.walk(cache.files):
        found += [os.path.relpath(os.path.join(directory, n), cache.files) for n in names]
    return sorted(found)


@pytest.mark.parametrize("path, query, suffix, expected", [
    ("/r/w:300/cat.jpg", "", "", "r/w:300/cat.jpg"),
    ("/dirpy/cat.jpg", "resize=10x10&save=fmt:png", "", "dirpy/cat.jpg?resize=10x10&save=fmt:png"),
    ("/r/f:auto/cat.jpg", "", "webp", "r/f:auto/cat.jpg@webp"),
    ("/r/café.jpg", "", "", "r/café.jpg"),
])
def test_names_follow_the_request_path(path, query, suffix, expected):
    assert cache_name(path, query, suffix) == expected


@pytest.mark.parametrize("path, query", [
    ("/r/../etc/passwd", ""),
    ("/r/./x.jpg", ""),
    ("/r//x.jpg", ""),
    ("/r/.hidden/x.jpg", ""),
    ("r/x.jpg", ""),
    ("/r/", ""),
    ("/r/" + "a" * 256 + ".jpg", ""),
    ("/r/x\0.jpg", ""),
    ("/dirpy/x.jpg", "a=/../../x"),
    ("/dirpy/x.jpg", "a=" + "b" * 2000),
])
def test_unsafe_names_are_not_cached(path, query):
    assert cache_name(path, query) is None


def test_a_stored_result_is_found_with_its_format_as_extension(cache):
    entry = cache.store("r/w:3/cat.jpg", "cat.jpg", "v1", b"x" * 100, "webp")
    assert entry.path.endswith("files/r/w:3/cat.jpg.webp")
    assert open(entry.path, "rb").read() == b"x" * 100
    found = cache.lookup("r/w:3/cat.jpg")
    assert (found.source, found.version, found.size, found.format) == ("cat.jpg", "v1", 100,
                                                                       "webp")
    assert found.etag == f'"{int(found.mtime):x}-{100:x}"'
    assert cache.total == 100


def test_a_file_removed_behind_the_index_is_a_miss(cache):
    entry = cache.store("r/a.jpg", "a.jpg", "v1", b"x" * 10, "jpg")
    os.unlink(entry.path)
    assert cache.lookup("r/a.jpg") is None
    assert cache.total == 0


def test_storing_again_replaces_and_keeps_the_total_right(cache):
    cache.store("r/a.jpg", "a.jpg", "v1", b"x" * 10, "jpg")
    cache.store("r/a.jpg", "a.jpg", "v2", b"y" * 30, "png")
    assert cache.total == 30
    assert files(cache) == ["r/a.jpg.png"]
    assert cache.lookup("r/a.jpg").version == "v2"


def test_invalidate_removes_every_result_of_a_source_and_empty_directories(cache):
    cache.store("r/w:1/a.jpg", "a.jpg", "v", b"1" * 10, "jpg")
    cache.store("r/w:2/a.jpg", "a.jpg", "v", b"2" * 10, "jpg")
    cache.store("r/w:1/b.jpg", "b.jpg", "v", b"3" * 10, "jpg")
    assert cache.invalidate(["a.jpg", "unknown.jpg"]) == 2
    assert files(cache) == ["r/w:1/b.jpg.jpg"]
    assert not os.path.exists(os.path.join(cache.files, "r", "w:2"))
    assert cache.total == 10


def test_a_name_that_collides_with_a_directory_is_not_cached(cache):
    cache.store("r/a/b.jpg", "a/b.jpg", "v", b"1", "jpg")
    os.makedirs(os.path.join(cache.files, "r", "x.jpg.jpg"))
    assert cache.store("r/x.jpg", "x.jpg", "v", b"2", "jpg") is None
    assert cache.lookup("r/x.jpg") is None


def test_least_recently_used_results_go_beyond_the_budget(cache):
    for index in range(9):
        cache.store(f"r/{index}.jpg", f"{index}.jpg", "v", b"x" * 100, "jpg")
    cache.touch("r/0.jpg")  # used again: now the most recent
    cache.store("r/9.jpg", "9.jpg", "v", b"x" * 200, "jpg")  # 1100 > 1000
    assert cache.total <= 900
    assert cache.lookup("r/0.jpg") is not None
    assert cache.lookup("r/1.jpg") is None
    assert cache.lookup("r/9.jpg") is not None


def test_a_result_nginx_read_since_counts_as_used(cache):
    for index in range(9):
        cache.store(f"r/{index}.jpg", f"{index}.jpg", "v", b"x" * 100, "jpg")
    # nginx served r/1.jpg: its access time is later than imagepipe's record.
    path = os.path.join(cache.files, "r", "1.jpg.jpg")
    os.utime(path, (cache.clock.now + 50, os.stat(path).st_mtime))
    cache.store("r/9.jpg", "9.jpg", "v", b"x" * 200, "jpg")
    assert cache.lookup("r/1.jpg") is not None
    assert cache.lookup("r/0.jpg") is None


def test_reconcile_removes_strays_and_rows_without_files(tmp_path):
    root = str(tmp_path / "cache")
    cache = ResultCache(root, 10_000)
    kept = cache.store("r/kept.jpg", "kept.jpg", "v", b"k" * 5, "jpg")
    gone = cache.store("r/gone.jpg", "gone.jpg", "v", b"g" * 5, "jpg")
    cache.close()
    os.unlink(gone.path)
    stray = os.path.join(root, "files", "r", "stray.jpg.jpg")
    with open(stray, "wb") as handle:
        handle.write(b"s")
    torn = os.path.join(root, "files", "r", ".tmp-0123")
    with open(torn, "wb") as handle:
        handle.write(b"t")
    past = os.stat(kept.path).st_mtime - 60
    for path in (stray, torn):
        os.utime(path, (past, past))
    cache = ResultCache(root, 10_000)
    assert cache.reconcile() == (2, 1)
    assert files(cache) == ["r/kept.jpg.jpg"]
    assert cache.total == 5
    cache.close()
