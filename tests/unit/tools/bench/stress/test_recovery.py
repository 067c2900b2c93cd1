"""How `make stress` measures recovery after overload and the soak's trend, on hand-made outcomes."""

from __future__ import annotations

import math

from tools.bench.stress.load import Outcome
from tools.bench.stress.probe import Watcher
from tools.bench.stress.recovery import backlog_drained_after, recovery_time
from tools.bench.stress.traffic import FirstTenthAgain, Traffic


def calm(seconds: float, rate: float = 40.0, latency: float = 0.05, start: float = 0.0) -> list[Outcome]:
    return [Outcome(start + i / rate, latency, 200) for i in range(int(seconds * rate))]


def test_recovered_when_the_backlog_is_gone() -> None:
    backlog = [Outcome(i / 40, 1.0, 200) for i in range(80)]  # two seconds behind the storm's work
    # a p99: the last few slow answers (under 1% of what follows) are within it
    assert 1.8 <= recovery_time(backlog + calm(13, start=2.0), calm(15)).at_s <= 2.0


def test_each_stretch_is_compared_with_the_same_requests_before_the_storm() -> None:
    """A heavy request is as slow after the storm as it was before: that is not a backlog."""
    heavy = [Outcome(6 + i / 40, 0.8, 200) for i in range(40)]  # a second of big requests
    baseline = calm(6) + heavy + calm(8, start=7.0)
    after = calm(6) + heavy + calm(8, start=7.0)
    recovery = recovery_time(after, baseline)
    assert recovery.at_s == 0.0 and recovery.tail_ms == recovery.baseline_tail_ms == 800.0
    slower = calm(6) + [Outcome(o.sent, 2.0, 200) for o in heavy] + calm(8, start=7.0)
    assert 6.8 <= recovery_time(slower, baseline).at_s <= 7.0  # 2.5x the same requests' tail until then


def test_one_slow_second_later_on_is_within_a_p99_but_ten_slow_seconds_are_not() -> None:
    episode = [Outcome(12 + i / 40, 0.5, 200) for i in range(4)]  # 4 slow answers of 600
    assert recovery_time(calm(12) + episode + calm(3, start=12.1), calm(15.1)).at_s == 0.0
    long_slow = [Outcome(5 + i / 40, 0.5, 200) for i in range(400)]
    assert math.isnan(recovery_time(calm(5) + long_slow, calm(15)).at_s)


def test_a_refused_calm_request_means_not_recovered_yet() -> None:
    refused = [Outcome(1.0, 0.01, 429)]
    assert recovery_time(calm(1) + refused + calm(10, start=1.025), calm(12)).at_s == 1.025


def test_never_recovered_is_nan() -> None:
    assert math.isnan(recovery_time([Outcome(i / 40, 1.0, 200) for i in range(400)], calm(10)).at_s)
    assert math.isnan(recovery_time(calm(1), calm(1)).at_s)  # too few answers for a p99


def test_queues_empty_after_counts_from_the_end_of_the_storm() -> None:
    watcher = Watcher("http://unused", pid=0)
    watcher.queued = [(9.0, 0.0), (10.5, 120.0), (11.0, 40.0), (11.5, 0.0), (12.0, 3.0)]
    assert backlog_drained_after(watcher, since=10.0) == 1.5
    assert math.isnan(backlog_drained_after(watcher, since=12.5))


def test_the_soaks_last_tenth_repeats_its_first() -> None:
    stream = FirstTenthAgain(Traffic(seed=3), total=25)
    sent = [stream() for _ in range(25)]
    assert stream.tenth == 2 and sent[-2:] == sent[:2]
    assert len({id(request) for request in sent[:-2]}) == 23  # fresh requests until then
