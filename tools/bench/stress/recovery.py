"""How quickly the calm traffic is back to normal after a storm, on the outcomes of two runs.

The calm traffic is itself uneven: 5% of its requests carry 9-32 inputs, and at half the capacity
a few of those close together make a second whose p90 is 1 s, storm or no storm (four 11 s calm
runs in a row: p90 175-316 ms, single seconds 22-1,023 ms). Compared with the tail of another
stretch of traffic, "back to baseline" measured that luck as often as the storm's backlog. So the
calm traffic after the storm replays the very requests the baseline sent before it, at the same
offsets, and each stretch of the after-run is compared with the same stretch of the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.bench.stress.load import Outcome, Run
from tools.bench.stress.probe import Watcher

RECOVERY_LIMIT_S = 5.0
"""The calm traffic must be back to its baseline this soon after a storm."""
RECOVERY_ANSWERS = 100
"""The fewest answers a recovered tail is taken over."""
RECOVERY_FACTOR, RECOVERY_SLACK_S = 1.5, 0.05
"""Back to baseline: a tail within 1.5x the baseline's tail of the same requests, or 50 ms more."""


@dataclass(frozen=True)
class Recovery:
    """When the after-run is back (seconds by send time, nan if never), with the two tails from then."""

    at_s: float
    tail_ms: float = float("nan")
    baseline_tail_ms: float = float("nan")


def recovery_time(
    after: list[Outcome], baseline: list[Outcome], percentile: float = 99, minimum: int = RECOVERY_ANSWERS
) -> Recovery:
    """The first request of `after` from which on nothing is refused and the tail is within
    RECOVERY_FACTOR (or RECOVERY_SLACK_S) of the tail of the same requests in `baseline`, over at
    least `minimum` answers. The two runs sent the same requests in the same order."""
    after_sorted = sorted(after, key=lambda o: o.sent)
    baseline_sorted = sorted(baseline, key=lambda o: o.sent)
    count = min(len(after_sorted), len(baseline_sorted))
    # the backlog is not gone while calm traffic is still turned away: start after the last refusal
    refused = [index for index, o in enumerate(after_sorted[:count]) if o.status != 200]
    first = refused[-1] + 1 if refused else 0
    after_latency = np.array([o.latency for o in after_sorted[:count]])
    baseline_latency = np.array([o.latency for o in baseline_sorted[:count]])
    for start in range(first, count - minimum + 1):
        tail = float(np.percentile(after_latency[start:], percentile))
        base = float(np.percentile(baseline_latency[start:], percentile))
        if tail <= max(base * RECOVERY_FACTOR, base + RECOVERY_SLACK_S):
            return Recovery(after_sorted[start].sent, tail * 1000, base * 1000)
    return Recovery(float("nan"))


def tail_by_second(run: Run, percentile: float) -> list[float]:
    """The answers' latency percentile (ms) for each second of sending; nan for a second without any."""
    seconds = int(max((o.sent for o in run.outcomes), default=0.0)) + 1
    return [
        round(run.percentile_ms(percentile, [o for o in run.outcomes if second <= o.sent < second + 1]), 1)
        for second in range(seconds)
    ]


def backlog_drained_after(watcher: Watcher, since: float) -> float:
    """Seconds from `since` (perf_counter) to the first /metrics sample with nothing queued; nan if none."""
    return next((at - since for at, queued in watcher.queued if at >= since and queued == 0), float("nan"))
