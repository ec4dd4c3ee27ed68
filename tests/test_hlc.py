"""The hybrid logical clock: follows the wall clock, never goes back."""

import pytest

from imagepipe.replication.hlc import HybridClock, counter, wall_ms


class Wall:
    """A wall clock the test sets by hand, in seconds."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self):
        return self.seconds


def stamp(ms, count=0):
    return ms << 16 | count


def test_a_timestamp_is_wall_milliseconds_and_a_counter():
    assert wall_ms(stamp(1234, 5)) == 1234
    assert counter(stamp(1234, 5)) == 5


def test_now_follows_a_wall_clock_that_moves_forward():
    wall = Wall(1.0)
    clock = HybridClock(wall)
    assert clock.now() == stamp(1000)
    wall.seconds = 1.5
    assert clock.now() == stamp(1500)
    assert clock.last == stamp(1500)


def test_sub_millisecond_wall_time_is_truncated():
    assert HybridClock(Wall(1.0019)).now() == stamp(1001)


def test_now_counts_while_the_wall_clock_stands_still():
    clock = HybridClock(Wall(2.0))
    assert [clock.now() for _ in range(3)] == [stamp(2000), stamp(2000, 1), stamp(2000, 2)]


def test_now_never_goes_back_when_the_wall_clock_does():
    wall = Wall(5.0)
    clock = HybridClock(wall)
    first = clock.now()
    wall.seconds = 3.0
    assert clock.now() == stamp(5000, 1)
    assert clock.now() > first


def test_a_full_counter_moves_to_the_next_millisecond():
    clock = HybridClock(Wall(1.0), last=stamp(1000, 0xFFFF))
    assert clock.now() == stamp(1001, 0)
    assert clock.now() == stamp(1001, 1)


def test_a_clock_resumes_above_its_stored_last_timestamp():
    clock = HybridClock(Wall(1.0), last=stamp(9000, 3))
    assert clock.now() == stamp(9000, 4)


def test_observing_a_future_remote_jumps_to_it():
    clock = HybridClock(Wall(1.0))
    clock.now()
    assert clock.observe(stamp(7000, 4)) == stamp(7000, 5)
    assert clock.now() == stamp(7000, 6)


def test_observing_an_old_remote_follows_the_wall_clock():
    clock = HybridClock(Wall(10.0))
    clock.now()
    assert clock.observe(stamp(3000, 9)) == stamp(10000, 1)


def test_observing_an_old_remote_with_a_newer_wall_restarts_the_counter():
    wall = Wall(10.0)
    clock = HybridClock(wall)
    clock.now()
    wall.seconds = 11.0
    assert clock.observe(stamp(3000, 9)) == stamp(11000, 0)


def test_observing_a_remote_in_the_same_millisecond_takes_the_higher_counter():
    clock = HybridClock(Wall(1.0), last=stamp(4000, 2))
    assert clock.observe(stamp(4000, 8)) == stamp(4000, 9)
    assert clock.observe(stamp(4000, 1)) == stamp(4000, 10)


def test_observing_a_remote_with_a_full_counter_moves_to_the_next_millisecond():
    clock = HybridClock(Wall(1.0))
    assert clock.observe(stamp(4000, 0xFFFF)) == stamp(4001, 0)


def test_every_timestamp_is_above_the_previous_one_whatever_the_wall_does():
    wall = Wall(100.0)
    clock = HybridClock(wall)
    seen = [clock.now()]
    for seconds, remote in [(99.0, None), (100.0, stamp(100500)), (50.0, None),
                            (100.2, stamp(1)), (100.6, None), (100.6, stamp(100600, 3))]:
        wall.seconds = seconds
        seen.append(clock.now() if remote is None else clock.observe(remote))
    assert seen == sorted(set(seen))


@pytest.mark.parametrize("remote", [-1, 2 ** 63, 1.5, True, "5"])
def test_observe_refuses_a_remote_outside_the_timestamp_range(remote):
    clock = HybridClock(Wall(1.0))
    with pytest.raises(ValueError, match="remote"):
        clock.observe(remote)
    assert clock.last == 0


@pytest.mark.parametrize("last", [-1, 2 ** 63])
def test_a_stored_last_timestamp_outside_the_range_is_refused(last):
    with pytest.raises(ValueError, match="last"):
        HybridClock(Wall(1.0), last=last)


def test_a_clock_with_no_timestamp_left_refuses_rather_than_wrapping():
    clock = HybridClock(Wall(1.0))
    with pytest.raises(OverflowError):
        clock.observe(2 ** 63 - 1)
    assert clock.last == 0
