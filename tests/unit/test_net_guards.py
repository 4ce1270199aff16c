"""The failed-key limiter, the flood filter on logs, the connection cap's descriptor arithmetic and
the listener settings' checks."""

from __future__ import annotations

import logging

import pytest

from core.errors import RateLimited
from proxy import listener
from proxy.auth import FailedAuthLimiter, client_bucket
from proxy.logs import RepeatFilter
from proxy.settings import ServerSettings, SettingsError, load_settings


def test_the_limiter_counts_ipv4_by_address_and_ipv6_by_64():
    assert client_bucket("192.0.2.1") == "192.0.2.1"
    assert client_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_bucket("2001:db8:a:b:1:2:3:4") == client_bucket("2001:db8:a:b::9") == "2001:db8:a:b::/64"
    assert client_bucket("unknown") == "unknown"


def test_the_limiter_refuses_past_the_limit_and_keeps_its_table_bounded(monkeypatch):
    limiter = FailedAuthLimiter(2)
    for _ in range(2):
        limiter.check("192.0.2.1")
        limiter.failed("192.0.2.1")
    with pytest.raises(RateLimited) as caught:
        limiter.check("192.0.2.1")
    assert caught.value.code == "too_many_failed_auth"
    limiter.check("192.0.2.2")  # another address is not affected
    monkeypatch.setattr(FailedAuthLimiter, "MAX_ADDRESSES", 10)
    for i in range(100):
        limiter.failed(f"198.51.100.{i}")
    assert len(limiter._failures) <= 10


def _record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)


def test_accept_failures_are_logged_once_per_interval_with_a_count(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("proxy.logs.time.monotonic", lambda: clock[0])
    flood = RepeatFilter(interval_s=10)
    accept = "socket.accept() out of system resource\nsocket: <asyncio.TransportSocket fd=6>"
    assert flood.filter(_record("asyncio", accept))
    assert not any(flood.filter(_record("asyncio", accept)) for _ in range(5000))
    assert flood.filter(_record("asyncio", "some other asyncio error"))  # other lines pass
    assert flood.filter(_record("claude_proxy.listener", "refused a request from 1.2.3.4: big"))
    clock[0] += 10
    record = _record("asyncio", accept)
    assert flood.filter(record)
    assert "5000 more like this" in record.getMessage()
    assert record.suppressed == 5000  # type: ignore[attr-defined]


def _limits(monkeypatch, soft: int, hard: int) -> list[tuple[int, int]]:
    state = {"soft": soft}
    calls: list[tuple[int, int]] = []

    def setrlimit(which, limits):
        if limits[0] > hard:
            raise ValueError("not allowed")
        calls.append(limits)
        state["soft"] = limits[0]

    monkeypatch.setattr(listener.resource, "getrlimit", lambda which: (state["soft"], hard))
    monkeypatch.setattr(listener.resource, "setrlimit", setrlimit)
    return calls


def test_the_connection_cap_raises_the_descriptor_limit_when_it_can(monkeypatch):
    calls = _limits(monkeypatch, 1024, 524288)
    assert listener.connection_cap(ServerSettings(max_connections=1000), pool_size=4) == 1000
    assert calls == [(1000 + 128 + 3 * listener.BACKLOG + 4 * 8, 524288)]


def test_the_connection_cap_stays_below_a_descriptor_limit_it_cannot_raise(monkeypatch, caplog):
    _limits(monkeypatch, 1024, 1024)
    with caplog.at_level(logging.WARNING, "claude_proxy.listener"):
        cap = listener.connection_cap(ServerSettings(max_connections=5000), pool_size=4)
    assert cap == 1024 - 128 - 3 * listener.BACKLOG - 4 * 8
    assert "LimitNOFILE" in caplog.text


@pytest.mark.parametrize(
    "server",
    [
        {"max_header_bytes": 100},
        {"max_headers": 0},
        {"max_connections": 0},
        {"header_timeout_s": 0},
        {"keep_alive_s": -1},
        {"trusted_proxies": ["*"]},
        {"trusted_proxies": ["proxy.example.com"]},
    ],
)
def test_bad_listener_settings_stop_the_server(server):
    with pytest.raises(SettingsError):
        load_settings(None, environ={}, overrides={f"server.{key}": value for key, value in server.items()})


def test_trusted_proxies_take_addresses_and_networks():
    settings = load_settings(None, environ={}, overrides={"server.trusted_proxies": ["10.0.0.0/8", "::1"]})
    assert settings.server.trusted_proxies == ["10.0.0.0/8", "::1"]
    assert load_settings(None, environ={}).server.trusted_proxies == []
