"""The in-flight limit follows what the server answers per second, between a floor and the cap."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from app.edge.inflight import InflightLimit, InflightPlaces


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_is_the_answer_rate_times_the_horizon_between_floor_and_cap() -> None:
    clock = Clock()
    limit = InflightLimit(1024, 4.0, floor=16, window_s=5.0, clock=clock)
    assert limit.limit() == 16  # nothing answered yet: the floor
    for _ in range(50):  # 10 answers a second over the window
        limit.answered()
    assert limit.limit() == 40
    for _ in range(10_000):
        limit.answered()
    assert limit.limit() == 1024  # never above the cap
    clock.now += 6.0  # the answers leave the window
    assert limit.limit() == 16


def test_a_zero_horizon_keeps_the_fixed_cap() -> None:
    assert InflightLimit(64, 0.0).limit() == 64


def test_a_place_is_given_back_once_however_often_it_is_released() -> None:
    places = InflightPlaces(
        InflightLimit(2, 0.0), Gauge("inflight", "in progress", registry=CollectorRegistry())
    )
    first, second = places.take(), places.take()
    first()
    first()  # the client left, then the request ended: one place
    assert places.count == 1 and places.gauge._value.get() == 1
    second()
    assert places.count == 0


async def test_a_request_at_the_limit_is_refused_with_the_count_and_the_limit() -> None:
    places = InflightPlaces(
        InflightLimit(1, 0.0), Gauge("inflight", "in progress", registry=CollectorRegistry())
    )
    assert await places.refusal() is None
    places.take()
    assert await places.refusal() == "1 requests in progress; the limit is 1 now"
