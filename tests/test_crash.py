"""Crashes and floods: kill -9 mid-stream loses no acknowledged write and leaves
no partial file; a thousand uploads beyond capacity get "busy" with bounded memory."""

import concurrent.futures
import http.client
import signal
import threading
import xmlrpc.client

import psutil
import pytest

from support.decoding import opened
from support.net import wait_for
from support.samples import photo
from support.server import b64

pytestmark = pytest.mark.slow


def test_kill_9_mid_stream_keeps_every_acknowledged_write(make_server):
    node = make_server(images__io_threads=2).start()
    payload = b64(photo(4272, 2848, quality=85, progressive=True))
    acknowledged, stop = [], threading.Event()

    def writer(worker):
        proxy = node.proxy()
        index = 0
        while not stop.is_set():
            path = f"crash/{worker}/{index}.jpg"
            try:
                proxy.store_image(payload, path, "", {"": [800, 800], "_s": [100, 100]})
            except (OSError, xmlrpc.client.Error, http.client.HTTPException):
                return
            acknowledged.append(path)
            index += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acknowledged) >= 6, timeout=60, what="some acknowledged writes")
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(30)
    stop.set()
    for thread in threads:
        thread.join(30)

    node.start()  # same root: the restart sweeps what the crash left
    wait_for(lambda: not [p for p in node.root.rglob(".imagepipe-tmp.*")], timeout=30,
             what="temporary files to be swept")
    for path in acknowledged:
        assert opened((node.root / path).read_bytes()).size == (800, 533)
        small = path.replace(".jpg", "_s.jpg")
        assert opened((node.root / small).read_bytes()).size == (100, 67)
    for stored in node.root.rglob("*.jpg"):
        opened(stored.read_bytes())  # every visible file is whole


def test_a_thousand_uploads_beyond_capacity_are_busy_with_bounded_memory(make_server):
    node = make_server(images__io_threads=1, images__max_pending=1).start()
    body = xmlrpc.client.dumps((b64(photo(4224, 3168, quality=85, progressive=True)), "flood/x.jpg", "",
                                [2000, 2000]), "store_image").encode()
    process = psutil.Process(node.process.pid)
    before = process.memory_info().rss

    def upload(_):
        connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=120)
        try:
            connection.request("POST", "/", body, {"Content-Type": "text/xml"})
            answer = connection.getresponse().read()
        finally:
            connection.close()
        if b"<name>faultCode</name>" in answer:
            return int(answer.split(b"<int>")[1].split(b"</int>")[0])
        return "OK"

    peak = [before]

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.05)

    done = threading.Event()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            results = list(pool.map(upload, range(1000)))
    finally:
        done.set()
        sampler.join()
    assert set(results) <= {"OK", 1003}
    assert results.count(1003) > 500 and "OK" in results
    assert (peak[0] - before) < 300 * 1024 * 1024, f"RSS grew by {(peak[0] - before) >> 20} MB"
    assert node.proxy().delete_image("flood/x.jpg") == "OK"
