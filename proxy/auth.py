"""Who is calling: the project API key from the headers every OpenAI client sends."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import deque
from typing import Any

from litestar.connection import ASGIConnection
from msgspec import Struct

from budgets.keys import KeyStore, Principal
from core.errors import AuthenticationError, PermissionDenied, RateLimited

# HTTP requests and WebSockets authenticate alike.
Connection = ASGIConnection[Any, Any, Any, Any]


def presented_key(request: Connection) -> str | None:
    """`Authorization: Bearer <key>`, else `api-key`, else `x-api-key`."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    for header in ("api-key", "x-api-key"):
        value = request.headers.get(header, "").strip()
        if value:
            return value
    return None


def client_bucket(host: str) -> str:
    """The limiter's unit for a client address: the address itself for IPv4, its /64 for IPv6,
    since one IPv6 subscriber is usually handed a whole /64 and could change address per guess."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailedAuthLimiter:
    """Counts failed key checks per client address (see `client_bucket`) over a sliding minute;
    past the limit, requests from that address whose key is not valid get 429 instead of 401.

    A valid key is always accepted, even from an address over the limit: the limit is there to
    make guessing slow, and refusing valid keys would let anyone who shares an address with a
    key's owner (a NAT, an office, a reverse proxy that is not in `server.trusted_proxies`) lock
    that owner out for a minute with a few bad requests. This does not help a guesser: project
    keys carry 256 random bits, so a hit is out of reach at any rate, and 429 tells it no more
    than 401 would. Successes do not clear the count, so a guesser holding one valid key cannot
    reset its window by mixing that key in.
    """

    # An address past its limit keeps at most this many timestamps; the table keeps at most this
    # many addresses (the oldest first out), so a flood from many addresses has a bounded cost.
    MAX_ADDRESSES = 65536

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    @staticmethod
    def _trim(window: deque[float], now: float) -> None:
        while window and window[0] <= now - 60:
            window.popleft()

    def check(self, client: str) -> None:
        """429 `too_many_failed_auth` when `client` is over the limit; call it for invalid keys only."""
        bucket = client_bucket(client)
        window = self._failures.get(bucket)
        if self.per_minute <= 0 or window is None:
            return
        now = time.monotonic()
        self._trim(window, now)
        if not window:
            del self._failures[bucket]  # the table holds only addresses failing right now
        elif len(window) >= self.per_minute:
            raise RateLimited(
                "Too many requests with invalid API keys from this address; slow down.",
                retry_after=window[0] + 60 - now,
                code="too_many_failed_auth",
            )

    def failed(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        bucket = client_bucket(client)
        now = time.monotonic()
        window = self._failures.get(bucket)
        if window is None:
            if len(self._failures) >= self.MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            window = self._failures[bucket] = deque(maxlen=self.per_minute)
        self._trim(window, now)
        window.append(now)


def _client(request: Connection) -> str:
    # With `server.trusted_proxies`, uvicorn has already put the forwarded address here.
    return request.client.host if request.client else "unknown"


def authenticate(request: Connection, keys: KeyStore, failures: FailedAuthLimiter | None = None) -> Principal:
    """The caller's project, or 401 `invalid_api_key` for a missing, unknown or revoked key
    (429 `too_many_failed_auth` instead when the address is over the failed-key limit)."""
    secret = presented_key(request)
    key = keys.verify(secret) if secret is not None else None
    project = keys.get_project(key.project) if key is not None else None
    if key is not None and project is not None:
        return Principal(project=project, key=key)
    if failures is not None:
        failures.check(_client(request))
        failures.failed(_client(request))
    if secret is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(create one with `claude-proxy keys create`)."
        )
    # Nothing of the credential is echoed: a 401 can end up in logs and error trackers, and a
    # key sent to the wrong server (an admin key, another service's key) should not leak there.
    raise AuthenticationError("Incorrect API key provided.")


def require_admin(
    request: Connection, admin_key: str | None, keys: KeyStore, failures: FailedAuthLimiter | None = None
) -> None:
    """Admin routes take only `auth.admin_key`; a valid project key gets 403, anything else 401.
    Wrong keys count toward the same per-address limit as on `/v1/*`."""
    if failures is not None:
        failures.check(_client(request))
    secret = presented_key(request)
    if secret is not None and admin_key and hmac.compare_digest(secret.encode(), admin_key.encode()):
        return
    if secret is not None and keys.verify(secret) is not None:
        raise PermissionDenied("Project keys cannot use the admin API.")
    if failures is not None:
        failures.failed(_client(request))
    if secret is None:
        raise AuthenticationError("The admin API needs the admin key as 'Authorization: Bearer <key>'.")
    if not admin_key:
        raise PermissionDenied("The admin API is disabled: set auth.admin_key to enable it.")
    raise AuthenticationError("Incorrect admin key provided.")


class AdminAccess(Struct):
    """The `admin` dependency of the `/admin` routes: it exists only once the caller presented
    `auth.admin_key` (401/403/429 otherwise), so a route that takes it is for the admin alone."""
