"""What the node counts, for Prometheus (``GET /metrics``) and statsd: one place.

``Metrics`` is what the rest of imagepipe calls (from the reactor or a worker
thread): ``request`` (an on-the-fly request answered), ``span`` (the time of
one stage of it), ``cache`` (a result-cache hit or miss), ``rpc`` (an
XML-RPC call answered) and ``error``.  Each call counts in Prometheus and,
when ``[metrics] statsd`` is set, sends the same to statsd (UDP, never
waiting).  Gauges that describe state (work in flight, the cache's size,
replication) are not counted as they change: a collector reads them from
the parts when Prometheus scrapes.

Names follow imgproxy's under the prefix ``imagepipe_``, so dashboards carry
over; statsd names follow OpenRoss's stage timers (``cache_check``,
``fetch``, ``resize``, ``cache_store``).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector

PREFIX = "imagepipe"
# The stages of an on-the-fly request (``span``) and the statsd timer each one is.
SPANS = {"queue": "queue", "cache": "cache_check", "fetch": "fetch", "decode": "decode",
         "resize": "resize", "encode": "encode", "render": "render",
         "cache_store": "cache_store"}
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Nothing:
    def inc(self, *args):
        pass

    dec = observe = inc

    def labels(self, *args):
        return self


class Metrics:
    """The node's counters and timers; ``text()`` is the Prometheus exposition.

    ``counting=False`` (``[metrics] enabled = false``) counts nothing and
    sends nothing: what the benchmark measures the cost of counting against.
    """

    def __init__(self, statsd=None, counting=True):
        self.counting = counting
        self.registry = CollectorRegistry(auto_describe=True)
        self.statsd = statsd  # a statsd.StatsClient, or None
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "On-the-fly requests answered.",
                                registry=r)
        self.statuses = Counter(f"{PREFIX}_status_codes", "On-the-fly answers by status.",
                                ["status"], registry=r)
        self.errors = Counter(f"{PREFIX}_errors", "Requests and calls that failed, by type.",
                              ["type"], registry=r)
        self.durations = Histogram(f"{PREFIX}_request_duration_seconds",
                                   "Time to answer an on-the-fly request.", registry=r,
                                   buckets=_DURATIONS)
        self.spans = Histogram(f"{PREFIX}_request_span_duration_seconds",
                               "Time of one stage of an on-the-fly request.", ["span"],
                               registry=r, buckets=_DURATIONS)
        self.hits = Counter(f"{PREFIX}_cache_hits", "Result-cache hits.", registry=r)
        self.misses = Counter(f"{PREFIX}_cache_misses", "Result-cache misses.", registry=r)
        self.calls = Counter(f"{PREFIX}_rpc_calls", "XML-RPC calls answered, by method and "
                             "fault code (0: none).", ["method", "fault"], registry=r)
        self.call_durations = Histogram(f"{PREFIX}_rpc_duration_seconds",
                                        "Time to answer an XML-RPC call.", ["method"],
                                        registry=r, buckets=_DURATIONS)
        self.in_progress = Gauge(f"{PREFIX}_requests_in_progress",
                                 "On-the-fly requests being answered.", registry=r)
        ProcessCollector(namespace=PREFIX, registry=r)
        if not counting:
            self.statsd = None
            for name in ("requests", "statuses", "errors", "durations", "spans", "hits",
                         "misses", "calls", "call_durations", "in_progress"):
                setattr(self, name, _Nothing())

    def watch(self, collector):
        """Add a collector whose ``collect()`` reads state when Prometheus scrapes."""
        self.registry.register(collector)

    def text(self):
        """The Prometheus text exposition of everything counted and watched."""
        return generate_latest(self.registry)

    # What the rest of imagepipe calls -----------------------------------------

    def request(self, status, seconds, fmt=None):
        """An on-the-fly request answered ``status`` after ``seconds`` (``fmt``: its format)."""
        self.requests.inc()
        self.statuses.labels(str(status)).inc()
        self.durations.observe(seconds)
        if self.statsd is not None:
            self.statsd.incr(f"requests.status.{status}")
            if fmt:
                self.statsd.incr(f"requests.format.{fmt}")
            self.statsd.timing("request", seconds * 1000)

    def span(self, name, seconds):
        """One stage (``SPANS``) of an on-the-fly request took ``seconds``."""
        self.spans.labels(name).observe(seconds)
        if self.statsd is not None:
            self.statsd.timing(SPANS[name], seconds * 1000)

    def cache(self, hit):
        (self.hits if hit else self.misses).inc()
        if self.statsd is not None:
            self.statsd.incr("cache.hit" if hit else "cache.miss")

    def rpc(self, method, fault, seconds):
        """An XML-RPC call of ``method`` answered with ``fault`` (0: success)."""
        self.calls.labels(method, str(fault)).inc()
        self.call_durations.labels(method).observe(seconds)
        if self.statsd is not None:
            self.statsd.incr(f"rpc.{method}.{'ok' if not fault else f'fault_{fault}'}")
            self.statsd.timing(f"rpc.{method}", seconds * 1000)

    def error(self, kind):
        """Something failed; ``kind`` is the error's class name."""
        self.errors.labels(kind).inc()
        if self.statsd is not None:
            self.statsd.incr(f"errors.{kind}")


class NodeState:
    """Gauges read from the parts when Prometheus scrapes (nothing counted as it changes)."""

    def __init__(self, workers, renderer=None, cache=None, replica=None, links=None,
                 clock=None):
        self.workers = workers
        self.renderer = renderer
        self.cache = cache
        self.replica = replica
        self.links = links
        self.clock = clock

    def describe(self):
        return []

    def collect(self):
        workers = self.workers
        images = GaugeMetricFamily(f"{PREFIX}_images_in_progress",
                                   "Images being made (XML-RPC calls and renders).")
        images.add_metric([], workers.writes.in_flight + workers.renders.in_flight)
        yield images
        threads = GaugeMetricFamily(f"{PREFIX}_workers", "Worker threads, by lane.",
                                    labels=["lane"])
        utilization = GaugeMetricFamily(f"{PREFIX}_workers_utilization",
                                        "Share of a lane's threads busy (0..1).",
                                        labels=["lane"])
        for lane in workers.lanes:
            threads.add_metric([lane.what], lane.threads)
            busy = getattr(lane, "running", None)
            busy = min(lane.in_flight, lane.threads) if busy is None else busy
            utilization.add_metric([lane.what], busy / lane.threads if lane.threads else 0)
        yield threads
        yield utilization
        if self.cache is not None:
            used = GaugeMetricFamily(f"{PREFIX}_cache_bytes",
                                     "What the result cache holds, counted against its budget.")
            used.add_metric([], self.cache.total)
            yield used
            evictions = CounterMetricFamily(f"{PREFIX}_cache_evictions",
                                            "Results removed to stay within the budget.")
            evictions.add_metric([], self.cache.evicted)
            yield evictions
        if self.replica is not None:
            yield from self._replication()

    def _replication(self):
        replica = self.replica
        published = GaugeMetricFamily(f"{PREFIX}_replication_published_sequence",
                                      "The sequence of this node's latest local change.")
        applied = replica.applied()
        published.add_metric([], applied.get(replica.node, 0))
        yield published
        others = GaugeMetricFamily(f"{PREFIX}_replication_applied_sequence",
                                   "The latest change applied from each origin.",
                                   labels=["origin"])
        for origin, seq in sorted(applied.items()):
            if origin != replica.node:
                others.add_metric([origin], seq)
        yield others
        journal = GaugeMetricFamily(f"{PREFIX}_journal_bytes", "The journal's size on disk.")
        journal.add_metric([], replica.journal.size_bytes())
        yield journal
        if self.links is not None:
            up = GaugeMetricFamily(f"{PREFIX}_replication_peer_up",
                                   "1 while the peer's heartbeats arrive.", labels=["peer"])
            lag = GaugeMetricFamily(f"{PREFIX}_replication_lag_seconds",
                                    "Seconds since this node last held everything the peer "
                                    "held (about a heartbeat while caught up).",
                                    labels=["peer"])
            for peer in self.links.peers():
                up.add_metric([peer.endpoint], 1 if peer.up else 0)
                lag.add_metric([peer.endpoint], float("inf") if peer.lag is None else peer.lag)
            yield up
            yield lag
