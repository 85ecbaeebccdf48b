"""Rate limits' pure parts: the sliding window's decision and headers, which limit a caller gets,
who the client is behind a proxy, which routes are exempt, and each request's deadline."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from services.gateway.rate_limits import (
    Decision,
    Limit,
    client_address,
    deadline_for,
    decide,
    headers,
    is_exempt,
    limit_for,
    parse_networks,
    refusal,
    seconds_until,
)
from shared.settings import Settings

WINDOW_MS = 60_000
NOW = 1_800_000_000_000  # ms


def test_seconds_until_rounds_up_and_is_never_below_one() -> None:
    assert seconds_until(NOW + 12_001, NOW) == 13
    assert seconds_until(NOW + 12_000, NOW) == 12
    assert seconds_until(NOW + 1, NOW) == 1
    assert seconds_until(NOW, NOW) == 1
    assert seconds_until(NOW - 5_000, NOW) == 1


def test_an_allowed_request_reports_what_is_left_and_when_the_oldest_leaves() -> None:
    oldest = NOW - 45_000  # leaves the window in 15 s
    decision = decide(True, 3, NOW, oldest, limit=10, window_ms=WINDOW_MS)
    assert decision == Decision(
        allowed=True, limit=10, remaining=7, reset_seconds=15, retry_after=0
    )
    assert headers(decision) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "15",
    }


def test_the_last_place_leaves_nothing_remaining_but_is_allowed() -> None:
    decision = decide(True, 10, NOW, NOW - 1_000, limit=10, window_ms=WINDOW_MS)
    assert decision.allowed
    assert decision.remaining == 0
    assert "Retry-After" not in headers(decision)


def test_a_refused_request_retries_when_the_oldest_request_leaves_the_window() -> None:
    decision = decide(False, 10, NOW, NOW - 59_500, limit=10, window_ms=WINDOW_MS)
    assert not decision.allowed
    assert decision.remaining == 0
    assert decision.retry_after == 1  # 0.5 s rounds up
    later = decide(False, 10, NOW, NOW - 20_250, limit=10, window_ms=WINDOW_MS)
    assert later.retry_after == 40
    assert headers(later)["Retry-After"] == "40"
    assert headers(later)["RateLimit-Reset"] == "40"


def test_the_refusal_names_the_limit_its_setting_and_when_to_retry() -> None:
    limit = Limit("per API key", "RATE_LIMIT_PER_KEY_PER_MINUTE", 600)
    decision = decide(False, 600, NOW, NOW - 30_000, limit=600, window_ms=WINDOW_MS)
    text = refusal(limit, decision)
    assert "600 requests in 60 s per API key" in text
    assert "RATE_LIMIT_PER_KEY_PER_MINUTE" in text
    assert text.endswith("retry in 30 s")


def test_each_kind_of_caller_gets_its_own_setting_and_zero_turns_it_off() -> None:
    settings = Settings(
        rate_limit_per_key_per_minute=600,
        rate_limit_anonymous_per_minute=0,
        rate_limit_public_per_minute=60,
    )
    assert limit_for("key", settings).per_window == 600
    assert limit_for("key", settings).setting == "RATE_LIMIT_PER_KEY_PER_MINUTE"
    assert limit_for("public", settings).per_window == 60
    assert limit_for("anonymous", settings).off
    assert not limit_for("public", settings).off


def test_the_defaults_are_ones_a_deployment_can_keep() -> None:
    settings = Settings()
    assert (
        settings.rate_limit_per_key_per_minute,
        settings.rate_limit_anonymous_per_minute,
        settings.rate_limit_public_per_minute,
        settings.max_streams_per_key,
        settings.trusted_proxies,
    ) == (600, 120, 60, 5, "")


TRUSTED = parse_networks("10.0.0.0/8, 192.168.1.5,::1")


def test_trusted_proxies_are_addresses_or_networks() -> None:
    expected = ("10.0.0.0/8", "192.168.1.5/32", "::1/128")
    assert tuple(ipaddress.ip_network(n) for n in expected) == TRUSTED
    assert parse_networks("") == ()
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.internal")


def test_the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    assert client_address("203.0.113.9", None, TRUSTED) == "203.0.113.9"
    # an untrusted peer cannot pick the address it is counted as
    assert client_address("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"
    # nobody is trusted by default
    assert client_address("10.1.2.3", "198.51.100.1", ()) == "10.1.2.3"


def test_behind_a_trusted_proxy_the_client_is_the_first_forwarded_hop() -> None:
    assert client_address("10.1.2.3", "198.51.100.1, 10.9.9.9", TRUSTED) == "198.51.100.1"
    assert client_address("192.168.1.5", " 2001:db8::7 ", TRUSTED) == "2001:db8::7"
    assert client_address("::1", "198.51.100.1", TRUSTED) == "198.51.100.1"
    # a hop that is not an address counts the proxy itself, not whatever text it holds
    assert client_address("10.1.2.3", "unknown, 198.51.100.1", TRUSTED) == "10.1.2.3"


def test_a_peer_that_is_no_address_is_counted_by_name() -> None:
    assert client_address("testclient", "198.51.100.1", TRUSTED) == "testclient"
    assert client_address(None, None, TRUSTED) == "unknown"


def test_probes_and_scrapes_are_never_limited() -> None:
    assert all(is_exempt(path) for path in ("/healthz", "/readyz", "/metrics"))
    assert not is_exempt("/api/whoami")
    assert not is_exempt("/t/o/abc.gif")
    assert not is_exempt("/healthz/x")


def test_a_request_has_a_deadline_and_the_model_routes_a_longer_one() -> None:
    settings = Settings(http_request_timeout_seconds=30, inference_timeout_seconds=120)
    assert deadline_for("/api/campaigns", settings) == 30
    assert deadline_for("/t/o/x.gif", settings) == 30
    assert deadline_for("/api/ai-assistant/inference", settings) == 150
    assert deadline_for("/api/ai-assistant/chat", settings) == 150
    assert deadline_for("/api/ai-assistant/intent", settings) == 30
    assert deadline_for("/api/campaigns", Settings(http_request_timeout_seconds=0)) is None
