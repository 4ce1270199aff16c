"""budgets.ratelimit: per-key rpm/tpm sliding windows, OpenAI's headers, and `format_reset`."""

from __future__ import annotations

import pytest

from budgets import ratelimit
from budgets.ratelimit import RateWindows, format_reset
from core.errors import RateLimited


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake.monotonic)
    return fake


@pytest.fixture
def limiter(clock: Clock) -> RateWindows:
    return RateWindows()


def test_rpm_allows_exactly_rpm_requests_then_refuses(limiter: RateWindows, clock: Clock) -> None:
    for _ in range(5):
        clock.now += 1
        limiter.admit("k", rpm=5, tpm=None, tokens=10)
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=5, tpm=None, tokens=10)
    error = caught.value
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    retry_after = int(error.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert retry_after == 56  # the oldest request (at +1s) leaves the window 56s from now (+5s)
    assert error.headers["x-ratelimit-limit-requests"] == "5"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "56s"


def test_refusals_keep_refusing_and_are_not_counted(limiter: RateWindows, clock: Clock) -> None:
    limiter.admit("k", rpm=1, tpm=None, tokens=1)
    for _ in range(10):
        with pytest.raises(RateLimited):
            limiter.admit("k", rpm=1, tpm=None, tokens=1)
    clock.now += 60  # the one admitted request leaves; the refused ones never entered
    ticket = limiter.admit("k", rpm=1, tpm=None, tokens=1)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "0"


def test_admitted_tickets_carry_request_headers_counting_down(limiter: RateWindows) -> None:
    remaining = []
    for _ in range(3):
        ticket = limiter.admit("k", rpm=3, tpm=None, tokens=10)
        assert ticket.headers["x-ratelimit-limit-requests"] == "3"
        assert ticket.headers["x-ratelimit-reset-requests"]
        remaining.append(ticket.headers["x-ratelimit-remaining-requests"])
        assert not any(name.endswith("-tokens") for name in ticket.headers)
    assert remaining == ["2", "1", "0"]


def test_reset_header_counts_down_to_the_oldest_request_leaving(limiter: RateWindows, clock: Clock) -> None:
    limiter.admit("k", rpm=10, tpm=None, tokens=1)
    clock.now += 20
    ticket = limiter.admit("k", rpm=10, tpm=None, tokens=1)
    assert ticket.headers["x-ratelimit-reset-requests"] == "40s"


def test_no_headers_without_limits(limiter: RateWindows) -> None:
    for _ in range(100):
        ticket = limiter.admit("k", rpm=None, tpm=None, tokens=1_000_000)
        assert ticket.headers == {}


def test_ticket_ids_are_unique(limiter: RateWindows) -> None:
    ids = {limiter.admit("k", rpm=None, tpm=None, tokens=1).id for _ in range(20)}
    assert len(ids) == 20


def test_a_single_request_over_tpm_is_refused(limiter: RateWindows) -> None:
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=None, tpm=1000, tokens=1001)
    assert caught.value.status == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
    # The refused request used nothing: a request of exactly tpm still fits.
    ticket = limiter.admit("k", rpm=None, tpm=1000, tokens=1000)
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "0"


def test_requests_fit_until_their_sum_passes_tpm(limiter: RateWindows) -> None:
    first = limiter.admit("k", rpm=None, tpm=1000, tokens=400)
    second = limiter.admit("k", rpm=None, tpm=1000, tokens=400)
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "600"
    assert second.headers["x-ratelimit-remaining-tokens"] == "200"
    assert "x-ratelimit-reset-tokens" in second.headers
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=None, tpm=1000, tokens=201)
    assert caught.value.headers["x-ratelimit-limit-tokens"] == "1000"
    assert caught.value.headers["x-ratelimit-remaining-tokens"] == "200"
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
    third = limiter.admit("k", rpm=None, tpm=1000, tokens=200)  # exactly fills the minute
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"


def test_adjust_lowering_a_tickets_tokens_lets_another_request_fit(limiter: RateWindows) -> None:
    ticket = limiter.admit("k", rpm=None, tpm=1000, tokens=800)
    with pytest.raises(RateLimited):
        limiter.admit("k", rpm=None, tpm=1000, tokens=500)
    limiter.adjust(ticket, 100)
    later = limiter.admit("k", rpm=None, tpm=1000, tokens=500)
    assert later.headers["x-ratelimit-remaining-tokens"] == "400"


def test_adjust_raising_a_tickets_tokens_counts_against_the_window(limiter: RateWindows) -> None:
    ticket = limiter.admit("k", rpm=None, tpm=1000, tokens=100)
    limiter.adjust(ticket, 950)
    with pytest.raises(RateLimited):
        limiter.admit("k", rpm=None, tpm=1000, tokens=100)


def test_adjust_of_an_unknown_key_is_ignored(limiter: RateWindows) -> None:
    other = RateWindows().admit("elsewhere", rpm=None, tpm=10, tokens=5)
    limiter.adjust(other, 0)  # no window for that key here: no error


def test_keys_have_separate_windows(limiter: RateWindows) -> None:
    limiter.admit("a", rpm=1, tpm=100, tokens=100)
    with pytest.raises(RateLimited):
        limiter.admit("a", rpm=1, tpm=100, tokens=1)
    ticket = limiter.admit("b", rpm=1, tpm=100, tokens=100)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "0"
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "0"


def test_the_window_empties_after_a_minute(limiter: RateWindows, clock: Clock) -> None:
    for _ in range(3):
        limiter.admit("k", rpm=3, tpm=900, tokens=300)
    with pytest.raises(RateLimited):
        limiter.admit("k", rpm=3, tpm=None, tokens=1)
    with pytest.raises(RateLimited):
        limiter.admit("k", rpm=None, tpm=900, tokens=1)
    clock.now += 61
    ticket = limiter.admit("k", rpm=3, tpm=900, tokens=300)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "2"
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "600"


def test_the_window_slides(limiter: RateWindows, clock: Clock) -> None:
    limiter.admit("k", rpm=2, tpm=None, tokens=1)  # t = 0
    clock.now += 30
    limiter.admit("k", rpm=2, tpm=None, tokens=1)  # t = 30
    clock.now += 29.5
    with pytest.raises(RateLimited):  # t = 59.5: both still inside
        limiter.admit("k", rpm=2, tpm=None, tokens=1)
    clock.now += 1.5
    limiter.admit("k", rpm=2, tpm=None, tokens=1)  # t = 61: the first left
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", rpm=2, tpm=None, tokens=1)
    assert caught.value.headers["Retry-After"] == "29"  # the one at t = 30 leaves at t = 90


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.02, "20ms"),
        (0.5, "500ms"),
        (0.999, "999ms"),
        (0.0, "1ms"),
        (1, "1s"),
        (1.0, "1s"),
        (1.5, "2s"),  # rounded up: never tells a caller to come back too early
        (30, "30s"),
        (59.2, "1m0s"),
        (60, "1m0s"),
        (61, "1m1s"),
        (360, "6m0s"),
        (3599, "59m59s"),
    ],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
