"""Reads against writes: store_image calls while anonymous clients flood on-the-fly misses.

One ``twistd imagepipe`` on its default settings (the result cache off, so
every read is a miss) holds one source, the corpus photo
``seeding_by_Clements_Engelhardt.jpg`` scaled to 640x480.  Each phase runs
for ``--seconds``:

(1) idle: a writer calls ``store_image`` (a 640x480 JPEG, one 200x200
    variant) back to back from 127.0.0.1; the baseline;
(2) flood: the same writer while 16 loops on one other address (127.0.0.2)
    ask for ``/r/w:{2000+i}/h:{3000+j}/e:1/`` of the source on kept-alive
    connections, every size new, without waiting (a 429 is retried at once);
(3) heavy reader: one client (127.0.0.3) with 4 connections and new sizes
    each time, while a second reader (127.0.0.4) asks for one new small
    size at a time; its latency against the same reader on an idle node.

It prints, per phase, the store calls that succeeded and failed (and with
which fault), their median and 95th-percentile latency as a ratio to the
idle phase, the reads answered 200 and 429, and the CPU the node used.
The server is the ``imagepipe`` on ``sys.path`` of this interpreter, so
``PYTHONPATH=<another checkout>`` measures that one.

    python bench/fairness.py [--seconds 30]

About 2 minutes with the defaults on a 2-CPU machine.
"""

import argparse
import base64
import http.client
import io
import os
import tempfile
import threading
import time
import xmlrpc.client
from collections import Counter
from pathlib import Path

import psutil
from PIL import Image

import corpus
from common import cpu_model, imagepipe, percentile, table

INI = """\
[network]
interface = 127.0.0.1
port = {port}
[images]
path = images
[http]
cache_max_bytes = 0
"""


def cpu_seconds(node):
    times = psutil.Process(node.process.pid).cpu_times()
    return times.user + times.system


class Client:
    """One kept-alive connection from ``address`` (a new one when the node closes it)."""

    def __init__(self, node, address):
        self.node, self.address, self.connection = node, address, None

    def get(self, path):
        """(status, seconds) of one GET."""
        started = time.perf_counter()
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.node.port, timeout=120, source_address=(self.address, 0))
            try:
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                response.read()
                if response.will_close:
                    self.close()
                return response.status, time.perf_counter() - started
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def source_jpeg():
    with Image.open(corpus.photo("seeding_by_Clements_Engelhardt.jpg")) as photo:
        small = photo.convert("RGB").resize((640, 480), Image.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=90)
    return out.getvalue()


def write_loop(node, payload, until):
    """Back-to-back store_image calls until ``until``: ([latency of each OK], Counter)."""
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{node.port}/")
    latencies, outcomes, index = [], Counter(), 0
    while time.monotonic() < until:
        index += 1
        started = time.perf_counter()
        try:
            proxy.store_image(payload, f"bench/{index}.jpg", "", [200, 200])
            latencies.append(time.perf_counter() - started)
            outcomes["OK"] += 1
        except xmlrpc.client.Fault as fault:
            outcomes[f"fault {fault.faultCode}"] += 1
    return latencies, outcomes


def readers(node, address, loops, path_of, until, reads):
    """Start ``loops`` threads GETting ``path_of(loop, n)`` from ``address`` until ``until``."""
    def loop(number):
        client, n = Client(node, address), 0
        while time.monotonic() < until:
            n += 1
            status, _ = client.get(path_of(number, n))
            reads[status] += 1
        client.close()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(loops)]
    for thread in threads:
        thread.start()
    return threads


def phase(node, seconds, payload=None, flood=None, probe=None):
    """Run one phase; a dict of what it measured."""
    until = time.monotonic() + seconds
    reads, threads = Counter(), []
    if flood is not None:
        address, loops, path_of = flood
        threads = readers(node, address, loops, path_of, until, reads)
        time.sleep(1)  # the flood under way before the first measured call
    cpu = cpu_seconds(node)
    started = time.monotonic()
    result = {"reads": reads}
    if payload is not None:
        result["latencies"], result["outcomes"] = write_loop(node, payload, until)
    if probe is not None:
        address, path_of = probe
        latencies, statuses, n, client = [], Counter(), 0, Client(node, address)
        while time.monotonic() < until:
            n += 1
            status, took = client.get(path_of(n))
            statuses[status] += 1
            if status == 200:
                latencies.append(took)
        client.close()
        result["latencies"], result["outcomes"] = latencies, statuses
    result["cores"] = (cpu_seconds(node) - cpu) / (time.monotonic() - started)
    for thread in threads:
        thread.join()
    return result


def quantiles(latencies):
    return percentile(latencies, 0.5), percentile(latencies, 0.95)


def row(name, result, baseline):
    median, p95 = quantiles(result["latencies"])
    base_median, base_p95 = quantiles(baseline["latencies"])
    outcomes = ", ".join(f"{count} {what}" for what, count in sorted(result["outcomes"].items()))
    reads = result["reads"]
    return [name, outcomes, f"{median * 1000:.0f} ms ({median / base_median:.2f}x)",
            f"{p95 * 1000:.0f} ms ({p95 / base_p95:.2f}x)",
            f"{reads[200]} / {reads[429]}" if reads else "-", f"{result['cores']:.2f}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    source = source_jpeg()
    payload = base64.b64encode(source).decode("ascii")
    enlarge = (lambda i, j: f"/r/w:{2000 + i}/h:{3000 + j}/e:1/src.jpg")
    small = (lambda n: f"/r/w:{100 + n % 400}/h:{100 + n // 400}/src.jpg")
    print(f"# Reads against writes: {cpu_model()}, {os.cpu_count()} CPUs; imagepipe from "
          f"{os.environ.get('PYTHONPATH') or 'this checkout'}\n")
    with tempfile.TemporaryDirectory() as scratch, imagepipe(Path(scratch), INI) as node:
        (Path(scratch) / "images" / "src.jpg").write_bytes(source)
        idle = phase(node, args.seconds, payload=payload)
        flooded = phase(node, args.seconds, payload=payload,
                        flood=("127.0.0.2", 16, enlarge))
        print(table(["phase", "store_image calls", "median", "p95", "reads 200 / 429",
                     "node cores"],
                    [row("idle", idle, idle), row("16 loops of misses", flooded, idle)]))
        print()
        quiet = phase(node, args.seconds / 2, probe=("127.0.0.4", small))
        heavy = phase(node, args.seconds, flood=("127.0.0.3", 4, enlarge),
                      probe=("127.0.0.4", small))
        print(table(["phase", "second reader's misses", "median", "p95",
                     "heavy reader 200 / 429", "node cores"],
                    [row("idle", quiet, quiet),
                     row("a reader with 4 connections", heavy, quiet)]))


if __name__ == "__main__":
    main()
