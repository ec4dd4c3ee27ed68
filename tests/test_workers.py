"""The worker lanes with a pool that runs jobs when the test says: admission, the
order in which waiting clients get a thread, and draining."""

import pytest
from twisted.python.failure import Failure

from imagepipe.errors import Busy
from imagepipe.workers import WorkerPool


class Reactor:
    def callFromThread(self, function, *args, **kwargs):
        function(*args, **kwargs)


class Pool:
    """Stands in for a ThreadPool: keeps the jobs until ``finish`` runs one."""

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, on_result, function, *args, **kwargs):
        self.jobs.append((on_result, function, args))

    def finish(self, name):
        """Run the job handed to a thread whose first argument is ``name``."""
        index = next(i for i, job in enumerate(self.jobs) if job[2][0] == name)
        on_result, function, args = self.jobs.pop(index)
        try:
            result = function(*args)
        except Exception:  # noqa: BLE001 - handed back as the ThreadPool does
            on_result(False, Failure())
            return
        on_result(True, result)

    def running(self):
        return [job[2][0] for job in self.jobs]

    def adjustPoolsize(self, low, high):
        pass


def workers(threads=1, pending=10, render_threads=1, render_pending=10):
    pool = WorkerPool(Reactor(), threads, pending, render_threads, render_pending)
    for lane in pool.lanes:
        lane.pool = Pool()
    return pool


def test_a_full_render_lane_leaves_the_writes_their_own():
    pool = workers(render_threads=1, render_pending=1)
    renders, writes = pool.renders, pool.writes
    renders.submit(str, "r1")
    renders.submit(str, "r2")
    with pytest.raises(Busy, match=r"2 renders in progress \(render_threads 1 \+ "
                                   r"max_render_pending 1\)"):
        renders.submit(str, "r3")
    done = writes.submit(str.upper, "w1")
    assert writes.pool.running() == ["w1"]
    writes.pool.finish("w1")
    assert done.result == "W1"


def test_a_free_thread_goes_to_the_client_with_the_fewest_jobs_running():
    lane = workers(render_threads=2).renders
    for name in ("h1", "h2", "h3", "h4"):
        lane.submit(str, name, client="heavy")
    lane.submit(str, "s1", client="small")
    assert lane.pool.running() == ["h1", "h2"]
    lane.pool.finish("h1")
    assert lane.pool.running() == ["h2", "s1"]  # not h3, queued first
    lane.pool.finish("s1")
    assert lane.pool.running() == ["h2", "h3"]


def test_equals_take_turns_the_one_served_longest_ago_first():
    lane = workers(render_threads=1).renders
    lane.submit(str, "a1", client="a")
    lane.submit(str, "a2", client="a")
    lane.submit(str, "b1", client="b")
    lane.submit(str, "c1", client="c")
    order = []
    while lane.pool.jobs:
        order.append(lane.pool.running()[0])
        lane.pool.finish(order[-1])
    assert order == ["a1", "b1", "c1", "a2"]
    assert lane.in_flight == lane.running == 0 and not lane._served


def test_drain_waits_for_every_lane():
    pool = workers()
    pool.writes.submit(str, "w")
    pool.renders.submit(str, "r")
    drained = pool.drain()
    pool.writes.pool.finish("w")
    assert not drained.called
    pool.renders.pool.finish("r")
    assert drained.called


def test_a_failing_job_frees_its_thread_for_the_next():
    lane = workers().writes
    failed = lane.submit(int, "not a number")
    lane.submit(str, "next")
    lane.pool.finish("not a number")
    assert isinstance(failed.result.value, ValueError)
    failed.addErrback(lambda _: None)
    assert lane.pool.running() == ["next"]


def test_nothing_is_admitted_while_closing():
    pool = workers()
    pool.closing = True
    with pytest.raises(Busy, match="shutting down"):
        pool.writes.submit(str, "w")


def test_stopping_fails_the_jobs_still_waiting_and_drains():
    pool = workers(render_threads=1)
    lane = pool.renders
    running = lane.submit(str, "r1", client="a")
    waiting = lane.submit(str, "r2", client="b")
    pool.closing = True
    drained = pool.drain()
    lane.stop()
    assert isinstance(waiting.result.value, Busy) and "shutting down" in str(waiting.result.value)
    waiting.addErrback(lambda _: None)
    lane.pool.finish("r1")
    assert running.result == "r1" and lane.pool.jobs == [] and drained.called
    assert lane.in_flight == 0


def test_a_resized_lane_hands_waiting_jobs_to_its_new_threads():
    lane = workers(threads=1).writes
    for name in ("w1", "w2", "w3"):
        lane.submit(str, name)
    lane.resize(3, 10)
    assert lane.pool.running() == ["w1", "w2", "w3"]


def test_lookups_go_straight_to_the_pool_first_come_first_served():
    lane = workers().lookups
    for name, client in (("l1", "a"), ("l2", "a"), ("l3", "b")):
        lane.submit(str, name, client=client)
    assert lane.pool.running() == ["l1", "l2", "l3"]  # no holding back for turns

