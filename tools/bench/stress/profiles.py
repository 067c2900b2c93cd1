"""How long and how hard each scenario runs: `full` for the figures in docs/reliability.md, `short` for CI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    calibrate_s: float
    calibrate_clients: int
    soak_requests: int
    soak_load: float  # share of measured capacity
    overload_s: float
    overload_factor: float
    recovery_s: float  # the calm traffic's runs, before and after the storm: at least this long
    # the tail that recovery compares: a p99 needs the full run's ~570 calm answers; the short
    # run's ~260 leave its p99 to the three slowest (138-388 ms between two runs' baselines)
    recovery_percentile: float
    sigterm_after_s: float
    storm_clients: int
    schemathesis_examples: int
    enforce_trends: bool  # memory growth and p99 drift need a long run to mean anything
    hostile_load: float  # the ordinary traffic beside the hostile cases: a share of measured capacity
    hostile_baseline_s: float  # how long that traffic runs alone first, for the tail it keeps
    hostile_repeats: int  # times each hostile request is sent (with the key and without)
    # the tail the traffic beside keeps: the short run's ~200 requests leave a p99 to its two slowest
    hostile_percentile: float


FULL = Profile(
    name="full",
    calibrate_s=30,
    calibrate_clients=32,
    soak_requests=100_000,
    soak_load=0.8,
    overload_s=60,
    overload_factor=5.0,
    recovery_s=15,
    recovery_percentile=99,
    sigterm_after_s=10,
    storm_clients=1000,
    schemathesis_examples=60,
    enforce_trends=True,
    hostile_load=0.25,
    hostile_baseline_s=30,
    hostile_repeats=3,
    hostile_percentile=99,
)

SHORT = Profile(
    name="short",
    calibrate_s=6,
    calibrate_clients=16,
    soak_requests=600,
    soak_load=0.8,
    overload_s=6,
    overload_factor=5.0,
    recovery_s=8,
    recovery_percentile=90,
    sigterm_after_s=2,
    storm_clients=150,
    schemathesis_examples=8,
    enforce_trends=False,
    hostile_load=0.2,
    hostile_baseline_s=10,
    hostile_repeats=1,
    hostile_percentile=95,
)

PROFILES = {profile.name: profile for profile in (FULL, SHORT)}
