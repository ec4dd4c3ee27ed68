"""How late imagepipe's reactor runs under load: cache hits at full speed, and a catch-up.

Every node runs a timer every 10 ms and reports how late it fired
(``/status?lag_seconds=N``, ``imagepipe/lag.py``).  One run measures that
lateness (p50, p99, max over the phase) on:

(1) an idle node, the baseline;
(2) the same node answering on-the-fly cache hits from its own result cache
    (no nginx in front: imagepipe reads and sends the file) as fast as wrk
    (Debian's, installed when missing) can ask on ``--connections``;
(3) a node catching up 1,000 writes it missed from its peer (started after
    they were made), until every file is on its disk, and the peer serving
    them.

and prints a table against the targets: p99 <= 5 ms and max <= 25 ms while
loaded.  The server is the ``imagepipe`` on this interpreter's path
(``PYTHONPATH=<checkout>`` measures another one).

    python bench/reactor_lag.py [--seconds 15] [--connections 50] [--writes 1000]

About a minute on a 2-CPU machine.
"""

import argparse
import base64
import io
import json
import math
import os
import re
import subprocess
import tempfile
import time
import urllib.request
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

import corpus
from common import Target, cpu_model, free_pair, imagepipe, table, tool

NODE_INI = """\
[network]
interface = 127.0.0.1
port = {{port}}
# No line per request, as bench/http.py.
access_log =
[images]
path = images
{replication}
"""


def lag(node, seconds):
    """The node's reactor lateness over the last ``seconds`` (whole, 1..60)."""
    url = f"http://127.0.0.1:{node.port}/status?lag_seconds={max(1, min(60, math.ceil(seconds)))}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)["reactor_lag"]


def source_jpeg(edge):
    with Image.open(corpus.photo("seeding_by_Clements_Engelhardt.jpg")) as photo:
        photo = photo.convert("RGB")
        photo.thumbnail((edge, edge), Image.LANCZOS)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def hits(node, connections, seconds):
    """Lateness while wrk asks for one cached result; and wrk's requests per second."""
    wrk = tool("wrk", "wrk")
    url = f"http://127.0.0.1:{node.port}/r/w:300/src.jpg"
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()  # rendered once: the rest are hits
    done = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
                          capture_output=True, text=True, check=True)
    measured = lag(node, seconds)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    return measured, float(rate.group(1)) if rate else 0.0


def files_under(root):
    return sum(1 for path in root.rglob("*.jpg") if ".imagepipe" not in path.parts)


def catch_up(workdir, writes):
    """Lateness of a node catching up ``writes`` missed writes, and of its peer; seconds."""
    port = free_pair()
    publish = f"[replication]\npublish = tcp://127.0.0.1:{port}\n"
    subscribe = f"[replication]\nsubscribe = tcp://127.0.0.1:{port}\n"
    data = base64.b64encode(source_jpeg(160)).decode("ascii")
    with imagepipe(workdir / "a", NODE_INI.format(replication=publish), "node A") as origin:
        proxy_url = f"http://127.0.0.1:{origin.port}/"

        def store(index):
            proxy = xmlrpc.client.ServerProxy(proxy_url)
            return proxy.store_image(data, f"w/{index // 100}/{index}.jpg", "")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(store, range(writes)))
        with imagepipe(workdir / "b", NODE_INI.format(replication=subscribe),
                       "node B") as peer:
            started = time.monotonic()
            while files_under(peer.directory / "images") < writes:
                if time.monotonic() - started > 300:
                    raise SystemExit("reactor_lag.py: the catch-up did not finish in 300 s")
                time.sleep(0.05)
            took = time.monotonic() - started
            return lag(peer, took), lag(origin, took), took


def row(name, measured):
    return [name, str(measured["ticks"]), f"{measured['p50_ms']:.2f}",
            f"{measured['p99_ms']:.2f}", f"{measured['max_ms']:.2f}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--writes", type=int, default=1000)
    args = parser.parse_args()
    print(f"# Reactor lag: {cpu_model()}, {os.cpu_count()} CPUs; imagepipe from "
          f"{os.environ.get('PYTHONPATH') or 'this checkout'}\n")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        with imagepipe(workdir / "hits", NODE_INI.format(replication="")) as node:
            (node.directory / "images" / "src.jpg").write_bytes(source_jpeg(1600))
            time.sleep(args.seconds + 2)  # the first seconds after start-up left out
            idle = lag(node, args.seconds)
            loaded, rate = hits(node, args.connections, args.seconds)
        peer, origin, took = catch_up(workdir, args.writes)
    print(table(["phase", "ticks", "p50 ms", "p99 ms", "max ms"], [
        row("idle", idle),
        row(f"cache hits, {args.connections} connections ({rate:.0f} req/s)", loaded),
        row(f"catching up {args.writes} writes ({took:.1f} s)", peer),
        row("its peer, serving the catch-up", origin)]))
    print()
    targets = [Target("hits: p99", loaded["p99_ms"], 5, True, " ms"),
               Target("hits: max", loaded["max_ms"], 25, True, " ms"),
               Target("catch-up: p99", peer["p99_ms"], 5, True, " ms"),
               Target("catch-up: max", peer["max_ms"], 25, True, " ms")]
    print(table(["target", "measured", "goal", ""], [t.row() for t in targets]))


if __name__ == "__main__":
    main()
