"""What counting costs: on-the-fly throughput with ``[metrics] enabled`` on against off.

Two nodes alike but for that one setting, measured in turn (on, off, on,
off, ...: drift shows in both), with wrk (Debian's, installed when missing):

(1) cache hits imagepipe serves itself (no nginx), ``--connections`` at a time;
(2) misses (result cache off, the photo at 1600 px to w:400), 4 connections.

For each, the best req/s of each node (the goal: on / off >= 0.97), and the
CPU time the node's process spent per request, median of the rounds: the
difference is what counting costs each request, whatever else the machine
was doing.

    python bench/metrics.py [--seconds 10] [--connections 50] [--rounds 3]
"""

import argparse
import re
import statistics
import subprocess
import urllib.request

import psutil

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
    """(requests per second, CPU seconds of the node per request) over one wrk run."""
    wrk = tool("wrk", "wrk")
    url = f"{node.url}{path}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
    process = psutil.Process(node.process.pid)
    before = process.cpu_times()
    done = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
                          capture_output=True, text=True, check=True)
    after = process.cpu_times()
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    if not found or not count or "Non-2xx" in done.stdout:
        raise SystemExit(f"wrk: {done.stdout}")
    cpu = (after.user - before.user) + (after.system - before.system)
    return float(found.group(1)), cpu / max(1, int(count.group(1)))


def run(work, enabled, cache, path, connections, seconds, source):
    ini = NODE.format(enabled="true" if enabled else "false", cache=cache)
    with imagepipe(work / f"{'on' if enabled else 'off'}-{cache}", ini) as node:
        (node.images / "src.jpg").write_bytes(source)
        return rate(node, path, connections, seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
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
        rates, cpus = {True: [], False: []}, {True: [], False: []}
        for _ in range(args.rounds):
            for enabled in (True, False):
                per_second, cpu = run(work, enabled, cache, path, connections, args.seconds,
                                      source)
                rates[enabled].append(per_second)
                cpus[enabled].append(cpu)
        ratio = max(rates[True]) / max(rates[False])
        cpu_on, cpu_off = (statistics.median(cpus[flag]) * 1e6 for flag in (True, False))
        rows.append((name, f"{max(rates[True]):.0f}", f"{max(rates[False]):.0f}",
                     f"{ratio:.3f}×", f"{cpu_on:.0f} / {cpu_off:.0f}",
                     f"{cpu_on - cpu_off:+.0f} µs ({cpu_on / cpu_off - 1:+.1%})"))
        targets.append((f"{name}: on / off", f"{ratio:.3f}×", "≥ 0.97×",
                        "met" if ratio >= 0.97 else "missed"))
    print(table(["requests", "req/s, counting", "req/s, not counting", "on / off",
                 "node CPU µs per request, on / off", "counting costs"], rows))
    print()
    print(table(["target", "measured", "goal", ""], targets))


if __name__ == "__main__":
    main()
