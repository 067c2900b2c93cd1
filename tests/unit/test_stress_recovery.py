"""How `make stress` measures recovery after overload, on hand-made outcomes."""

from __future__ import annotations

import math

from tools.bench.stress.load import Outcome
from tools.bench.stress.probe import Watcher
from tools.bench.stress.scenarios import backlog_drained_after, recovery_time

THRESHOLD_S = 0.3


def calm(seconds: float, rate: float = 40.0, latency: float = 0.05, start: float = 0.0) -> list[Outcome]:
    return [Outcome(start + i / rate, latency, 200) for i in range(int(seconds * rate))]


def test_recovered_when_the_backlog_is_gone() -> None:
    backlog = [Outcome(i / 40, 1.0, 200) for i in range(80)]  # two seconds behind the storm's work
    # a p99: the last few slow answers (under 1% of what follows) are within it
    assert 1.8 <= recovery_time(backlog + calm(13, start=2.0), THRESHOLD_S) <= 2.0


def test_one_slow_second_later_on_is_within_a_p99_but_ten_slow_seconds_are_not() -> None:
    """The old measure (every later ten answers under the threshold) would say 12 s for the first."""
    episode = [Outcome(12 + i / 40, 0.5, 200) for i in range(4)]  # 4 slow answers of 600
    assert recovery_time(calm(12) + episode + calm(3, start=12.1), THRESHOLD_S) == 0.0
    long_slow = [Outcome(5 + i / 40, 0.5, 200) for i in range(400)]
    assert math.isnan(recovery_time(calm(5) + long_slow, THRESHOLD_S))


def test_a_refused_calm_request_means_not_recovered_yet() -> None:
    refused = [Outcome(1.0, 0.01, 429)]
    assert recovery_time(calm(1) + refused + calm(10, start=1.05), THRESHOLD_S) == 1.05


def test_never_recovered_is_nan() -> None:
    assert math.isnan(recovery_time([Outcome(i / 40, 1.0, 200) for i in range(400)], THRESHOLD_S))
    assert math.isnan(recovery_time(calm(1), THRESHOLD_S))  # too few answers for a p99


def test_queues_empty_after_counts_from_the_end_of_the_storm() -> None:
    watcher = Watcher("http://unused", pid=0)
    watcher.queued = [(9.0, 0.0), (10.5, 120.0), (11.0, 40.0), (11.5, 0.0), (12.0, 3.0)]
    assert backlog_drained_after(watcher, since=10.0) == 1.5
    assert math.isnan(backlog_drained_after(watcher, since=12.5))
