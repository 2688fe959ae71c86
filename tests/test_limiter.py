"""The token bucket of SPEC §6, driven by a fake clock."""

from __future__ import annotations

from sparks.limiter import TokenBucket, format_reset


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_at_start_then_429_with_retry_after() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=60, burst=3, clock=clock)
    assert [bucket.try_acquire().allowed for _ in range(3)] == [True, True, True]
    refused = bucket.try_acquire()
    assert not refused.allowed
    assert refused.retry_after_s == 1
    assert refused.remaining == 0


def test_refills_continuously_at_rate_per_second() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=120, burst=1, clock=clock)  # 2 tokens/s
    assert bucket.try_acquire().allowed
    assert not bucket.try_acquire().allowed
    clock.now += 0.49
    assert not bucket.try_acquire().allowed
    clock.now += 0.02
    assert bucket.try_acquire().allowed


def test_first_minute_allows_burst_plus_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=120, burst=30, clock=clock)
    allowed = 0
    start = clock.now
    for step in range(60 * 100 + 1):  # try every 10 ms from t=0 to t=60 s inclusive
        clock.now = start + step / 100
        allowed += bucket.try_acquire().allowed
    assert allowed == 30 + 120


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=6, burst=1, clock=clock)  # one token per 10 s
    bucket.try_acquire()
    clock.now += 0.5
    refused = bucket.try_acquire()
    assert refused.retry_after_s == 10  # ceil(9.5)


def test_burst_below_one_still_allows_one_request() -> None:
    bucket = TokenBucket(per_minute=60, burst=0, clock=Clock())
    assert bucket.try_acquire().allowed
    assert not bucket.try_acquire().allowed


def test_remaining_counts_down() -> None:
    bucket = TokenBucket(per_minute=60, burst=5, clock=Clock())
    assert [bucket.try_acquire().remaining for _ in range(5)] == [4, 3, 2, 1, 0]


def test_reset_format_matches_openai_style() -> None:
    assert format_reset(0.017) == "17ms"
    assert format_reset(1.5) == "1.5s"
    assert format_reset(360) == "6m0s"
