"""The HTTP listener's own limits: request-head size, header count, head and keep-alive timeouts,
and a cap on open connections.

uvicorn's httptools protocol has none of the first three (httptools buffers a header of any size,
and a connection that never finishes its request head is kept for ever), and its
`limit_concurrency` answers 503 only after a request head is complete, so it neither frees the
descriptors of slow connections nor stops `accept()` from running out of them. These checks live
in a subclass of that protocol because they must act before any request reaches the ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from asyncio import TimerHandle
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.settings import ServerSettings

log = logging.getLogger("claude_proxy.listener")

# After refusing a request the server stops writing but reads (and drops) what the client is
# still sending for this long before closing: closing with unread data makes the kernel send a
# reset, which can destroy the refusal before the client reads it.
_LINGER_S = 2.0

# The listen backlog, which asyncio also uses as the most connections it accepts in one turn of
# the event loop, before any of them reaches `connection_made` and the cap. uvicorn's 2048 would
# let one burst overshoot the cap by 2048 descriptors; 128 was Linux's default somaxconn for years.
BACKLOG = 128

# Descriptors kept free for everything but capped client connections: the listening socket,
# SQLite, Redis, log files, image fetches, three pipes per CLI process, and room for connections
# accepted in a burst and for closed ones not yet released (up to three turns of the loop).
_RESERVED_FDS = 128 + 3 * BACKLOG
_FDS_PER_CLI = 8


def connection_cap(settings: ServerSettings, pool_size: int) -> int:
    """`server.max_connections`, lowered if the descriptor limit cannot hold it.

    The soft RLIMIT_NOFILE is raised towards the hard limit first (as Go's runtime does), since
    the usual soft default of 1024 is a relic of select(); asyncio uses epoll.
    """
    reserve = _RESERVED_FDS + _FDS_PER_CLI * max(pool_size, 0)
    wanted = settings.max_connections + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, raised, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return settings.max_connections
    cap = max(soft - reserve, 1)
    log.warning(
        "server.max_connections %d needs %d descriptors but the limit is %d: capping connections at %d "
        "(raise LimitNOFILE, see docs/deploy.md)",
        settings.max_connections,
        wanted,
        soft,
        cap,
    )
    return cap


def _error_bytes(status: int, message: str, code: str, extra: list[bytes] | None = None) -> bytes:
    """An OpenAI-shaped error answer, written by the protocol itself: the app never sees these."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n",
        *(extra or []),
        b"\r\n",
    ]
    return b"".join(head) + body


_BUSY = _error_bytes(
    503,
    "The server has too many open connections; retry shortly.",
    "too_many_connections",
    [b"retry-after: 1\r\n"],
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with head limits, a head timeout and a connection cap.

    A connection is *waiting* while it has no request in progress: reading a request head, or idle
    between keep-alive requests. Waiting connections are bounded in time (`header_timeout_s` for a
    head, uvicorn's `timeout_keep_alive` between requests); at the connection cap a new connection
    closes the connection that has been waiting longest, so slow clients cannot keep others out.
    Only when every connection is busy with a request is the newcomer refused (503).
    """

    max_header_bytes = 65536
    max_headers = 100
    header_timeout_s = 10.0
    max_connections = 1000

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True  # the parser is before the end of a request head
        self._head_bytes = 0  # bytes received since that head began (an upper bound)
        self._header_count = 0
        self._head_timer: TimerHandle | None = None
        self._waiting_since = time.monotonic()
        self._refusal: tuple[int, str, str] | None = None
        self._refused = False

    @classmethod
    def configured(cls, settings: ServerSettings, max_connections: int) -> type[GuardedHttpToolsProtocol]:
        """A subclass carrying these limits; uvicorn builds one protocol object per connection."""

        class Configured(cls):  # type: ignore[valid-type,misc]  # a class built at run time from settings
            pass

        Configured.max_header_bytes = settings.max_header_bytes
        Configured.max_headers = settings.max_headers
        Configured.header_timeout_s = settings.header_timeout_s
        Configured.max_connections = max_connections
        return Configured

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        if self._over_cap() and not self._evict_longest_waiting():
            log.warning("refused a connection: all %d connections are serving requests", self.max_connections)
            self._refused = True
            self.transport.write(_BUSY)
            self.transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _over_cap(self) -> bool:
        if len(self.connections) <= self.max_connections:
            return False
        # Connections already closed (evicted a moment ago, say) stay in the set until the loop
        # runs their connection_lost; they do not hold a slot.
        closing = sum(
            1 for conn in self.connections if getattr(conn, "transport", None) and conn.transport.is_closing()
        )
        return len(self.connections) - closing > self.max_connections

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _evict_longest_waiting(self) -> bool:
        waiting = [
            conn
            for conn in self.connections
            if isinstance(conn, GuardedHttpToolsProtocol)
            and conn is not self
            and not conn._busy()
            and not conn.transport.is_closing()
        ]
        if not waiting:
            return False
        victim = min(waiting, key=lambda conn: conn._waiting_since)
        log.warning("connection cap %d reached: closed the connection waiting longest", self.max_connections)
        victim.transport.close()
        return True

    def on_response_complete(self) -> None:
        self._waiting_since = time.monotonic()
        super().on_response_complete()

    # The request head

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._busy():
            # A pipelined head trickling in behind a running request: end after that response.
            self.cycle.keep_alive = False
            return
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what the client is still sending
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._refusal is None and self._in_head and self._head_bytes > self.max_header_bytes:
            self._refusal = (431, "The request head is larger than this server accepts.", "request_header_too_large")
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        # uvicorn drops its keep-alive timer on any data; while a head is incomplete, or while the
        # body of an already answered request is still coming (and being dropped), ours applies.
        # Its deadline is not moved by later data, so sending a byte now and then does not help.
        if (self._in_head or not self._busy()) and self.timeout_keep_alive_task is None:
            self._arm_head_timer()

    def on_message_begin(self) -> None:
        if self._refusal is None:
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refusal is None:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refusal is not None:
            return
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, "The request has more header fields than this server accepts.", "too_many_headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refusal is not None:
            return
        self._cancel_head_timer()
        self._in_head = False
        # Exact size, for a head that ended inside a chunk that also carried body bytes.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        self._head_bytes = 0
        self._header_count = 0
        if size > self.max_header_bytes:
            self._refusal = (431, "The request head is larger than this server accepts.", "request_header_too_large")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is not None:
            return
        self._in_head = True
        super().on_message_complete()

    def _refuse(self, status: int, message: str, code: str) -> None:
        log.warning("refused a request from %s: %s", self.client[0] if self.client else "?", message)
        self._refused = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self.transport.write(_error_bytes(status, message, code))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)
