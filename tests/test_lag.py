"""The reactor-lag probe on a fake clock: lateness recorded per firing, summarised."""

from twisted.internet.task import Clock

from imagepipe.lag import LagProbe


def started(interval=0.01, window=1.0):
    clock = Clock()
    probe = LagProbe(clock, interval, window)
    probe.startService()
    return clock, probe


def test_a_timer_on_time_records_no_lateness():
    clock, probe = started()
    clock.pump([0.01] * 10)
    assert list(probe.samples) == [0.0] * 10


def test_a_blocked_reactor_shows_as_the_lateness_of_the_next_firing():
    clock, probe = started()
    clock.advance(0.01)
    clock.advance(0.25)  # the reactor was busy for a quarter of a second
    assert round(probe.samples[-1], 6) == 0.24
    assert probe.summary()["max_ms"] == 240.0


def test_the_window_keeps_the_latest_firings_only():
    clock, probe = started(window=0.05)
    clock.pump([0.01] * 20)
    assert len(probe.samples) == 5


def test_summary_gives_percentiles_in_milliseconds():
    clock, probe = started(window=10.0)
    for _ in range(99):
        clock.advance(0.01)
    clock.advance(0.01)
    clock.advance(0.03)  # one firing 20 ms late
    summary = probe.summary()
    assert summary["ticks"] == 101 and summary["p50_ms"] == 0.0
    assert summary["p99_ms"] == 0.0 and summary["max_ms"] == 20.0


def test_stopping_cancels_the_timer():
    clock, probe = started()
    probe.stopService()
    assert not clock.getDelayedCalls()


def test_summary_of_the_last_seconds_only():
    clock, probe = started(window=10.0)
    clock.advance(0.01)
    clock.advance(0.11)  # 100 ms late, then a second of timely firings
    clock.pump([0.01] * 100)
    assert probe.summary()["max_ms"] == 100.0
    assert probe.summary(0.5) == {"ticks": 50, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
