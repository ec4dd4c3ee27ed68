"""What counting costs: on-the-fly throughput with ``[metrics] enabled`` on against off.

Two nodes alike but for that one setting, measured in turn (on, off, on, off:
drift shows in both), with wrk (Debian's, installed when missing):

(1) cache hits imagepipe serves itself (no nginx), ``--connections`` at a time;
(2) misses (result cache off, the photo at 1600 px to w:400), 4 connections.

Each node's best run is kept; the table gives on / off, the goal >= 0.97.

    python bench/metrics.py [--seconds 10] [--connections 50]
"""

import argparse
import re
import subprocess
import urllib.request

from common import cpu_model, imagepipe, table, tool
import corpus

NODE = """\
[network]
port = {{port}}
access_log =
[images]
path = images
[http]
cache_max_bytes = {cache}
[metrics]
enabled = {enabled}
"""


def rate(node, path, connections, seconds):
    wrk = tool("wrk", "wrk")
    url = f"{node.url}{path}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
    done = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
                          capture_output=True, text=True, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if not found or "Non-2xx" in done.stdout:
        raise SystemExit(f"wrk: {done.stdout}")
    return float(found.group(1))


def run(work, enabled, cache, path, connections, seconds, source):
    ini = NODE.format(enabled="true" if enabled else "false", cache=cache)
    with imagepipe(work / f"{'on' if enabled else 'off'}-{cache}", ini) as node:
        (node.images / "src.jpg").write_bytes(source)
        return rate(node, path, connections, seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    from pathlib import Path
    import tempfile

    source = corpus.photo("seeding_by_Clements_Engelhardt.jpg").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="imagepipe-metrics-"))
    print(f"# {cpu_model()}\n")
    rows, targets = [], []
    for name, cache, path, connections in (
            ("cache hits, served by imagepipe", "1GiB", "r/w:300/src.jpg", args.connections),
            ("misses (no result cache)", "0", "r/w:400/src.jpg", 4)):
        best = {True: 0.0, False: 0.0}
        for enabled in (True, False, True, False):
            best[enabled] = max(best[enabled], run(work, enabled, cache, path, connections,
                                                   args.seconds, source))
        ratio = best[True] / best[False]
        rows.append((name, f"{best[True]:.0f}", f"{best[False]:.0f}", f"{ratio:.3f}×"))
        targets.append((f"{name}: on / off", f"{ratio:.3f}×", "≥ 0.97×",
                        "met" if ratio >= 0.97 else "missed"))
    print(table(["requests", "req/s, counting", "req/s, not counting", "on / off"], rows))
    print()
    print(table(["target", "measured", "goal", ""], targets))


if __name__ == "__main__":
    main()
