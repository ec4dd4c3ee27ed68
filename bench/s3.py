"""The store and on-the-fly misses on an S3 bucket against the same on the tree, in one run.

A local S3 API server (``moto_server``, installed with the test extras) holds
the bucket.  Three measurements, each a ratio against the tree in this run:

1. the store task of ``bench/store.py`` (Kleiber, 6028x3391, to 1024 fit,
   250 fit and a 50x50 crop, JPEG q85) over XML-RPC, 2 clients, on
   ``[images] backend = tree`` and ``= s3``: median time per call;
2. on-the-fly misses (the photo at 2048 px to w:512, result cache off, 4
   clients) with ``source = tree`` and ``source = s3``: requests per second;
3. 2,000 small store calls on the bucket: the node's memory and its open
   connections after each fifth of them.

    .venv/bin/python bench/s3.py [--calls 40] [--seconds 15] [--long-calls 2000]
"""

import argparse
import base64
import io
import secrets
import sys
import threading
import time
import urllib.request
import xmlrpc.client
from pathlib import Path

import boto3
import psutil
from PIL import Image, ImageOps

from common import (cpu_model, free_port, imagepipe, percentile, table,  # noqa: E402
                    wait_listening)
import corpus  # noqa: E402
from store import store_arguments  # noqa: E402 - the task of bench/store.py

WORK = Path(__file__).resolve().parent / ".cache" / "s3-run"
MOTO = Path(sys.executable).with_name("moto_server")
KEYS = ("bench", "bench")

NODE = """\
[network]
port = {{port}}
serve_images = false
[images]
path = images
backend = {backend}
io_threads = 2
[http]
cache_max_bytes = 0
[[native]]
source = {source}
[s3]
bucket = bench
endpoint_url = {endpoint}
addressing_style = path
access_key_id = {key}
secret_access_key = {key}
"""


def s3_server(directory):
    """moto_server on a free port, and a client of it with the bucket made."""
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(directory / "moto.log", "wb")
    process = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                               stderr=subprocess.STDOUT)
    wait_listening(process, port, lambda: (directory / "moto.log").read_text(), name="moto")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1])
    client.create_bucket(Bucket="bench")
    return process, endpoint, client


def node(name, backend, source, endpoint):
    ini = NODE.format(backend=backend, source=source, endpoint=endpoint, key=KEYS[0])
    return imagepipe(WORK / f"{name}-{secrets.token_hex(3)}", ini, name=name)


def timed_stores(server, payload, calls, clients=2):
    """Median and p95 seconds of ``calls`` store calls from ``clients`` threads."""
    durations, lock = [], threading.Lock()
    counter = iter(range(calls))

    def client():
        proxy = xmlrpc.client.ServerProxy(server.url)
        for index in counter:
            started = time.perf_counter()
            proxy.store_image(*store_arguments(payload, f"bench/{index % 8}.jpg"))
            with lock:
                durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return percentile(durations, 0.5), percentile(durations, 0.95)


def misses(server, names, seconds, clients=4):
    """Requests per second of on-the-fly misses, ``clients`` at a time for ``seconds``."""
    done, errors, lock = [0], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset):
        index = offset
        while time.monotonic() < deadline:
            url = f"{server.url}r/w:512/{names[index % len(names)]}"
            index += clients
            try:
                with urllib.request.urlopen(url, timeout=60) as answer:
                    answer.read()
                with lock:
                    done[0] += 1
            except OSError:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors[0]:
        raise SystemExit(f"{errors[0]} on-the-fly requests failed on {server.name}")
    return done[0] / (time.monotonic() - started)


def connections(server):
    """The node's open TCP connections (to S3 and from clients)."""
    return len(psutil.Process(server.process.pid).net_connections(kind="tcp"))


def long_run(server, calls):
    """RSS (MB) and open connections after each fifth of ``calls`` small store calls."""
    small = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 80, 40)).save(small, "JPEG", quality=90)
    payload = xmlrpc.client.Binary(small.getvalue())
    proxy = xmlrpc.client.ServerProxy(server.url)
    marks = []
    for index in range(calls):
        proxy.store_image(payload, f"long/{index % 50}.jpg", "jpg", {"": [100, 100]})
        if (index + 1) % (calls // 5) == 0:
            marks.append((index + 1, server.rss() / 1e6, connections(server)))
    return marks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40, help="store calls per backend")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of misses per source")
    parser.add_argument("--long-calls", type=int, default=2000)
    parser.add_argument("--photo", default="Kleiber_by_Lukas_Baubkus.jpg")
    args = parser.parse_args()

    photo = corpus.photo(args.photo)
    data = photo.read_bytes()
    payload = base64.b64encode(data).decode("ascii")
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    upright.thumbnail((2048, 2048), Image.LANCZOS)
    source = io.BytesIO()
    upright.convert("RGB").save(source, "JPEG", quality=90)
    names = [f"src/{index}.jpg" for index in range(16)]

    WORK.mkdir(parents=True, exist_ok=True)
    moto, endpoint, client = s3_server(WORK / "moto")
    try:
        for name in names:
            client.put_object(Bucket="bench", Key=name, Body=source.getvalue())
        print(f"# {cpu_model()}; S3: moto_server on loopback; photo {photo.name} "
              f"({len(data) / 1e6:.1f} MB)\n")

        stores = {}
        for backend in ("tree", "s3", "tree", "s3"):  # alternated: drift shows in both
            with node(f"store-{backend}", backend, "tree", endpoint) as server:
                timed_stores(server, payload, 4)  # warm up
                median, p95 = timed_stores(server, payload, args.calls)
                stores.setdefault(backend, []).append((median, p95))
        rows = [(backend, f"{min(m for m, _ in runs) * 1000:.0f} ms",
                 f"{min(p for _, p in runs) * 1000:.0f} ms") for backend, runs in stores.items()]
        print(table(["store on", "median", "p95"], rows))
        store_ratio = (min(m for m, _ in stores["s3"]) / min(m for m, _ in stores["tree"]))

        rates = {}
        for where in ("tree", "s3", "tree", "s3"):
            with node(f"misses-{where}", "tree", where, endpoint) as server:
                if where == "tree":
                    for name in names:
                        target = server.images / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(source.getvalue())
                misses(server, names, 2)  # warm up
                rates.setdefault(where, []).append(misses(server, names, args.seconds))
        print()
        print(table(["misses from", "req/s"],
                    [(where, f"{max(runs):.1f}") for where, runs in rates.items()]))
        miss_ratio = max(rates["s3"]) / max(rates["tree"])

        with node("long-s3", "s3", "tree", endpoint) as server:
            marks = long_run(server, args.long_calls)
        print()
        print(table(["calls", "RSS", "open connections"],
                    [(str(n), f"{rss:.0f} MB", str(conns)) for n, rss, conns in marks]))
        growth = marks[-1][1] / marks[0][1]
        print()
        print(table(["target", "measured", "goal", ""], [
            ("store on a bucket / on the tree, median", f"{store_ratio:.2f}×", "≤ 1.3×",
             "met" if store_ratio <= 1.3 else "missed"),
            ("on-the-fly misses from a bucket / from the tree", f"{miss_ratio:.2f}×", "≥ 0.8×",
             "met" if miss_ratio >= 0.8 else "missed"),
            (f"RSS after {marks[-1][0]} / after {marks[0][0]} calls", f"{growth:.3f}×",
             "≤ 1.05×", "met" if growth <= 1.05 else "missed"),
            ("open connections, last / first fifth", f"{marks[-1][2]} / {marks[0][2]}",
             "no growth", "met" if marks[-1][2] <= marks[0][2] else "missed"),
        ]))
    finally:
        moto.terminate()
        moto.wait(30)


if __name__ == "__main__":
    main()
