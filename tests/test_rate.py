"""The adaptive connection rate: grows while answers come back, backs off when losses rise,
never above its ceiling (--rate), unbounded at 0. Driven by a clock the test moves."""

from __future__ import annotations

import inspect

from phiwatch.dial import AdaptiveRate
from phiwatch.engine import DEFAULT_RATE, Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_window(rate: AdaptiveRate, clock: Clock, answered: int, lost: int = 0, drops: int = 0) -> None:
    """One window of 0.05 s in which the scan used all the rate it had; outcomes as given."""
    for _ in range(max(1, int(rate.rate * AdaptiveRate.WINDOW))):
        rate.reserve()
    outcomes = [(False, False)] * lost + [(True, i < drops) for i in range(answered)]
    for answer, drop in outcomes[:-1]:
        rate.record(answer, drop)
    clock.now += AdaptiveRate.WINDOW * 1.01  # the window closes with its last outcome
    rate.record(*outcomes[-1])


def test_grows_while_answers_come_back_and_stops_at_the_ceiling():
    clock = Clock()
    rate = AdaptiveRate(5000, clock)
    assert rate.rate == AdaptiveRate.START  # starts low
    seen = []
    for _ in range(10):
        run_window(rate, clock, answered=100)
        seen.append(rate.rate)
    assert seen[:2] == [2000, 4000]  # slow start: doubles per window
    assert max(seen) == 5000 == seen[-1]  # never above the ceiling


def test_a_ceiling_of_zero_leaves_it_unbounded():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    for _ in range(12):
        run_window(rate, clock, answered=100)
    assert rate.rate > 1_000_000


def test_no_growth_when_the_rate_was_not_what_held_the_scan_back():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    for _ in range(5):  # answers come back, but only 2 connects per window were asked for
        rate.reserve()
        rate.reserve()
        for _ in range(19):
            rate.record(True)
        clock.now += AdaptiveRate.WINDOW * 1.01
        rate.record(True)
    assert rate.rate == AdaptiveRate.START


def test_backs_off_when_timeouts_rise_and_grows_slowly_after():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    for _ in range(5):
        run_window(rate, clock, answered=90, lost=10)  # 10% lost is this network's usual level
    before = rate.rate
    run_window(rate, clock, answered=40, lost=60)  # then losses rise
    assert rate.rate == before / 2 and rate.backoffs == 1
    run_window(rate, clock, answered=90, lost=10)
    assert rate.rate == before / 2 * 1.1  # after a back-off: a tenth per window, not double


def test_answers_on_a_retry_are_drops_and_back_off():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    run_window(rate, clock, answered=100)
    before = rate.rate
    run_window(rate, clock, answered=100, drops=3)
    assert rate.rate == before / 2


def test_a_network_dark_from_the_start_is_not_congestion():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    for _ in range(20):  # 95% of addresses never answer, from the first window on
        run_window(rate, clock, answered=5, lost=95)
    assert rate.backoffs == 0 and rate.rate > AdaptiveRate.START


def test_never_below_the_floor():
    clock = Clock()
    rate = AdaptiveRate(0, clock)
    run_window(rate, clock, answered=100)
    for _ in range(40):
        run_window(rate, clock, answered=20, lost=80, drops=5)
    assert rate.rate == AdaptiveRate.FLOOR


def test_pacing_spaces_connects_at_the_current_rate():
    clock = Clock()
    rate = AdaptiveRate(100, clock)  # ceiling below the start: starts at the ceiling
    assert rate.rate == 100
    delays = [rate.reserve() for _ in range(11)]
    # a burst of 0.05 s of credit, then one connect every 10 ms
    assert delays[0] <= 0 and abs(delays[-1] - (10 * 0.01 - AdaptiveRate.BURST)) < 1e-9


def test_the_default_ceiling_is_the_command_lines():
    from phiwatch.cli import scan
    from phiwatch.run import ScanRequest

    assert Limits().rate == DEFAULT_RATE == ScanRequest(targets=[]).rate
    assert inspect.signature(scan).parameters["rate"].default == DEFAULT_RATE
