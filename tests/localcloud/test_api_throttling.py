"""API Gateway's token buckets as the local API applies them (localcloud.api_throttling), on a clock the
test moves."""

from __future__ import annotations

from localcloud.api_throttling import Throttle, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_passes_its_burst_then_its_rate_and_says_when_a_token_is_back() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)
    throttle = Throttle(rate_limit=2.0, burst_limit=3)
    assert [buckets.take("a", throttle) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", throttle) == 0.5  # empty: one token is back in 1 / rate seconds
    clock.now = 0.25
    assert buckets.take("a", throttle) == 0.25  # half a token came back meanwhile
    clock.now = 0.5
    assert buckets.take("a", throttle) == 0.0
    clock.now = 100.0  # a long pause refills up to the burst, never beyond it
    assert [buckets.take("a", throttle) for _ in range(4)][-1] > 0


def test_each_name_has_a_bucket_of_its_own() -> None:
    buckets = TokenBuckets(Clock())
    throttle = Throttle(rate_limit=1.0, burst_limit=1)
    assert buckets.take("tenant-a", throttle) == 0.0
    assert buckets.take("tenant-a", throttle) > 0
    assert buckets.take("tenant-b", throttle) == 0.0


def test_a_throttle_is_read_from_a_usage_plan_or_method_settings() -> None:
    assert Throttle.of({"rateLimit": 0.5, "burstLimit": 2}) == Throttle(0.5, 2)
    assert Throttle.of({"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}) == Throttle(100.0, 200)
    assert Throttle.of({}) is None
    assert Throttle.of(None) is None
