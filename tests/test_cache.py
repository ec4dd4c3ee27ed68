"""The result cache on its own: names, store and lookup, sharing, invalidation, LRU, reconcile."""

import os
import time

import pytest

from imagepipe.web.cache import ResultCache, cost
from imagepipe.web.cache_keys import cache_name


class Clock:
    """Wall-clock seconds (compared with file access times), a second per call."""

    def __init__(self):
        self.now = time.time() + 10  # ahead of the files' own times

    def __call__(self):
        self.now += 1
        return self.now


@pytest.fixture
def cache(tmp_path):
    made = ResultCache(str(tmp_path / "cache"), max_bytes=10 * cost(100), clock=Clock())
    yield made
    made.close()


def put(cache, name, size=100, source=None, version="v", fmt="jpg", key=None):
    """Store ``size`` bytes as ``name`` (key: the name itself unless given)."""
    source = source or name.split("/")[-1]
    return cache.store(name, key or f"key of {name}", source, version, b"x" * size, fmt)


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
    ("/r/" + "a" * 251, ""),  # fits, but not with ".webp" after it
    ("/r/x\0.jpg", ""),
    ("/r/q?d/z.jpg", ""),  # a directory a query could climb out of
    ("/r/a@webp/z.jpg", ""),
    ("/r/a\\b.jpg", ""),
    ("/dirpy/x.jpg", "a=/../../x"),
    ("/dirpy/x.jpg", "a=" + "b" * 2000),
])
def test_unsafe_names_are_not_cached(path, query):
    assert cache_name(path, query) is None


def test_a_stored_result_is_found_with_its_format_as_extension(cache):
    entry = put(cache, "r/w:3/cat.jpg", fmt="webp", version="v1")
    assert entry.path.endswith("files/r/w:3/cat.jpg.webp") and entry.file == "r/w:3/cat.jpg.webp"
    assert open(entry.path, "rb").read() == b"x" * 100
    found = cache.lookup("r/w:3/cat.jpg")
    assert (found.source, found.version, found.size, found.format) == ("cat.jpg", "v1", 100,
                                                                       "webp")
    assert found.etag == f'"{int(found.mtime):x}-{100:x}"'
    assert cache.total == cost(100) == 4096 + 512


def test_a_file_removed_behind_the_index_is_a_miss(cache):
    os.unlink(put(cache, "r/a.jpg").path)
    assert cache.lookup("r/a.jpg") is None
    assert cache.total == 0


def test_storing_again_replaces_and_keeps_the_total_right(cache):
    put(cache, "r/a.jpg", size=10)
    put(cache, "r/a.jpg", size=5000, fmt="png", version="v2")
    assert cache.total == cost(5000) == 8192 + 512
    assert files(cache) == ["r/a.jpg.png"]
    assert cache.lookup("r/a.jpg").version == "v2"


def test_another_name_for_a_cached_key_becomes_a_link(cache):
    first = put(cache, "r/w:300/a.jpg", key="tree\nwidth:300\na.jpg\n", version="v1")
    linked = cache.share("r/width:300/a.jpg", "tree\nwidth:300\na.jpg\n", "v1")
    assert linked is not None and linked.source == "a.jpg" and linked.version == "v1"
    assert os.path.samefile(first.path, linked.path)
    assert cache.lookup("r/width:300/a.jpg") is not None
    assert cache.share("r/other/a.jpg", "tree\nwidth:300\na.jpg\n", "v2") is None  # stale
    assert cache.share("r/other/a.jpg", "tree\nwidth:301\na.jpg\n") is None
    assert cache.invalidate(["a.jpg"]) == 2
    assert files(cache) == []


def test_invalidate_removes_every_result_of_a_source_and_empty_directories(cache):
    put(cache, "r/w:1/a.jpg", size=10)
    put(cache, "r/w:2/a.jpg", size=10)
    put(cache, "r/w:1/b.jpg", size=10)
    assert cache.invalidate(["a.jpg", "unknown.jpg"]) == 2
    assert files(cache) == ["r/w:1/b.jpg.jpg"]
    assert not os.path.exists(os.path.join(cache.files, "r", "w:2"))
    assert cache.total == cost(10)


def test_what_cannot_be_stored_is_not_cached_and_leaves_nothing(cache):
    put(cache, "r/a/b.jpg", size=1)
    os.makedirs(os.path.join(cache.files, "r", "x.jpg.jpg"))
    assert put(cache, "r/x.jpg", size=2) is None  # a directory holds the name
    assert cache.lookup("r/x.jpg") is None
    assert put(cache, "r/" + "n" * 254, size=2) is None  # too long with its extension
    assert put(cache, "r/big.jpg", size=11 * 4096) is None  # over 90 % of the budget
    assert [f for f in files(cache) if ".tmp-" in f] == []
    assert cache.total == cost(1)


def test_least_recently_used_results_go_beyond_the_budget(cache):
    for index in range(9):
        put(cache, f"r/{index}.jpg")
    cache.touch("r/0.jpg")  # used again: now the most recent
    put(cache, "r/9.jpg", size=5000)  # 9 x 4608 + 8704 > 10 x 4608
    assert cache.total <= 0.9 * cache.max_bytes
    assert cache.lookup("r/0.jpg") is not None
    assert cache.lookup("r/1.jpg") is None
    assert cache.lookup("r/9.jpg") is not None


def test_a_result_nginx_read_since_counts_as_used(cache):
    for index in range(9):
        put(cache, f"r/{index}.jpg")
    # nginx served r/1.jpg: its access time is later than imagepipe's record.
    path = os.path.join(cache.files, "r", "1.jpg.jpg")
    os.utime(path, (cache.clock.now + 50, os.stat(path).st_mtime))
    put(cache, "r/9.jpg", size=5000)
    assert cache.lookup("r/1.jpg") is not None
    assert cache.lookup("r/0.jpg") is None


def test_reconcile_removes_strays_and_rows_without_files(tmp_path):
    root = str(tmp_path / "cache")
    cache = ResultCache(root, 10_000_000)
    kept = put(cache, "r/kept.jpg", size=5)
    gone = put(cache, "r/gone.jpg", size=5)
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
    cache = ResultCache(root, 10_000_000)
    assert not cache.emptied
    assert cache.reconcile() == (2, 1)
    assert files(cache) == ["r/kept.jpg.jpg"]
    assert cache.total == cost(5)
    cache.close()


def test_a_changed_fingerprint_empties_the_cache(tmp_path):
    root = str(tmp_path / "cache")
    cache = ResultCache(root, 10_000_000, fingerprint="quality 80")
    put(cache, "r/a.jpg")
    cache.close()
    same = ResultCache(root, 10_000_000, fingerprint="quality 80")
    assert not same.emptied and same.lookup("r/a.jpg") is not None
    same.close()
    changed = ResultCache(root, 10_000_000, fingerprint="quality 90")
    assert changed.emptied
    assert changed.lookup("r/a.jpg") is None and files(changed) == [] and changed.total == 0
    changed.reconcile()
    assert [n for n in os.listdir(root) if n.startswith("files.old-")] == []
    changed.close()


def test_the_fingerprint_names_what_results_depend_on():
    from types import SimpleNamespace

    from imagepipe.config import HttpSettings
    from imagepipe.web.cache_keys import fingerprint

    engine = SimpleNamespace(name="wand", formats=frozenset({"jpg", "png", "webp"}))
    http = HttpSettings(cache_path="", cache_max_bytes=1, max_age=1, accel_redirect="",
                        quality=80, auto_avif=False, sign_keys="", mounts=(), origins=None)
    first = fingerprint("2.0.0", engine, http, [b"k" * 16])
    # The same settings give the same text in every process (sets are sorted).
    again = SimpleNamespace(name="wand", formats=frozenset({"webp", "png", "jpg"}))
    assert fingerprint("2.0.0", again, http, [b"k" * 16]) == first
    from dataclasses import replace

    for changed in (fingerprint("2.0.1", engine, http, [b"k" * 16]),
                    fingerprint("2.0.0", SimpleNamespace(name="pillow", formats=engine.formats),
                                http, [b"k" * 16]),
                    fingerprint("2.0.0", engine, replace(http, quality=81), [b"k" * 16]),
                    fingerprint("2.0.0", engine, replace(http, auto_avif=True), [b"k" * 16]),
                    fingerprint("2.0.0", engine, http, [b"j" * 16]),
                    fingerprint("2.0.0", engine, http)):
        assert changed != first
    # What does not shape a result (the cache's own budget) does not empty it.
    assert fingerprint("2.0.0", engine, replace(http, cache_max_bytes=2), [b"k" * 16]) == first
