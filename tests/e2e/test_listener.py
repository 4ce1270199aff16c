"""The listener's limits against abusive connections: oversized and over-long request heads, slow
heads (slowloris), idle keep-alive connections and the connection cap, all over loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # no TIME_WAIT
    return sock


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # The server may close while a large head is still being sent; the answer is read afterwards.
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (monotonic)."""
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, time.monotonic()
        if not chunk:
            return received, time.monotonic()
        received += chunk
    raise AssertionError(f"the server kept the connection open for {timeout} s; received {received[:200]!r}")


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _is_open(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_oversized_request_head_gets_431_and_the_connection_closes(make_server):
    server = make_server({"server": {"max_header_bytes": 8192}, "pool": {"spares": 0}})
    for head in (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",  # one long header
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 150) for i in range(70)),
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"c" * 4_000_000,  # never finished
    ):
        with _connect(server) as sock:
            _send_quietly(sock, head)
            raw, _ = _read_until_closed(sock, timeout=5)
        status, body = _status_and_body(raw)
        assert status == 431
        assert body["error"]["code"] == "request_header_too_large"
        assert b"connection: close" in raw
    assert httpx.get(server.url + "/health", headers={"X-Fine": "a" * 4000}).status_code == 200


def test_too_many_header_fields_get_431(make_server):
    server = make_server({"server": {"max_headers": 50}, "pool": {"spares": 0}})
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(2000))  # 20 kB: within max_header_bytes
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        raw, _ = _read_until_closed(sock, timeout=5)
    status, body = _status_and_body(raw)
    assert status == 431
    assert body["error"]["code"] == "too_many_headers"
    assert httpx.get(server.url + "/health", headers={f"X-{i}": "1" for i in range(40)}).status_code == 200


def test_a_slow_request_head_is_closed_within_the_header_timeout(make_server):
    server = make_server({"server": {"header_timeout_s": 1.0}, "pool": {"spares": 0}})
    with _connect(server) as silent, _connect(server) as dripping:
        opened = time.monotonic()
        dripping.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # Slowloris: a byte of a header every 0.2 s, which keeps resetting any idle timer.
        closed_at = None
        deadline = opened + 5
        while closed_at is None and time.monotonic() < deadline:
            try:
                dripping.sendall(b"X")
            except OSError:
                closed_at = time.monotonic()
                break
            if not _is_open(dripping):
                closed_at = time.monotonic()
            else:
                time.sleep(0.2)  # the pace of the attack, not a wait for a condition
        assert closed_at is not None, "a dripping head was never cut off"
        assert closed_at - opened < 3.0
        # A connection that never sends a byte is closed the same way.
        _, silent_closed = _read_until_closed(silent, timeout=5)
        assert silent_closed - opened < 3.0


def test_an_idle_keep_alive_connection_is_closed(make_server):
    server = make_server({"server": {"keep_alive_s": 1.0}, "pool": {"spares": 0}})
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = time.monotonic()
        raw, closed = _read_until_closed(sock, timeout=5)
    assert raw.startswith(b"HTTP/1.1 200")
    assert closed - answered < 3.0


def test_slow_connections_beyond_the_cap_do_not_keep_a_normal_request_out(make_server):
    # The head timeout is long here, so only the cap protects the normal request.
    server = make_server({"server": {"max_connections": 20, "header_timeout_s": 60}, "pool": {"spares": 0}})
    slow = []
    try:
        for _ in range(50):
            sock = _connect(server)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
            slow.append(sock)
        started = time.monotonic()
        response = httpx.get(server.url + "/health", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        # The server holds at most the cap: the connections waiting longest were closed.
        deadline = time.monotonic() + 5
        while sum(_is_open(sock) for sock in slow) > 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sum(_is_open(sock) for sock in slow) <= 20
    finally:
        for sock in slow:
            sock.close()


def test_when_every_connection_is_serving_a_request_a_new_one_gets_503(make_server):
    server = make_server({"server": {"max_connections": 4, "header_timeout_s": 60}, "pool": {"spares": 0}})
    busy = []
    try:
        # Authenticated requests whose bodies never come: each holds its connection in a request.
        for _ in range(4):
            sock = _connect(server)
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + server.api_key.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
            )
            busy.append(sock)
        # Let the server take all four heads before the fifth connection arrives.
        assert server.wait_until(lambda: _health_refused(server), timeout=5)
        with _connect(server) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw, _ = _read_until_closed(sock, timeout=5)
        status, body = _status_and_body(raw)
        assert status == 503 and body["error"]["code"] == "too_many_connections"
        assert b"retry-after: 1" in raw
        busy.pop().close()
        assert server.wait_until(lambda: _health_ok(server), timeout=5)
    finally:
        for sock in busy:
            sock.close()


def _health_refused(server) -> bool:
    try:
        return httpx.get(server.url + "/health", timeout=2).status_code == 503
    except httpx.HTTPError:
        return True


def _health_ok(server) -> bool:
    try:
        return httpx.get(server.url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_at_a_low_descriptor_limit_the_cap_keeps_accept_working_and_the_log_quiet(
    cli_binary, upstream_server, tmp_path
):
    # The probe's failure: at 1024 descriptors, 1,030 slow connections made accept() fail in a
    # loop (155,117 logged tracebacks in 30 s) and normal requests wait. Here 650 slow connections
    # meet a limit of 600, which the configured cap (1000) does not fit, so the server caps itself
    # below the limit and closes the connections waiting longest.
    server = RunningServer(
        tmp_path / "srv",
        cli=cli_binary,
        upstream_url=upstream_server.url,
        config={"server": {"header_timeout_s": 60, "log_level": "info"}, "pool": {"size": 1, "spares": 0}},
    )
    server.max_open_files = 600
    server.start()
    slow = []
    try:
        for _ in range(650):
            sock = _connect(server)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        started = time.monotonic()
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        log = server.log_path.read_text()
        assert "capping connections at" in log
        assert "out of system resource" not in log
        assert log.count("connection cap ") <= 2  # one line per interval, not one per connection
    finally:
        for sock in slow:
            sock.close()
        server.stop()


def test_a_body_trickling_after_the_answer_does_not_hold_the_connection(make_server):
    # The key is checked before the body is read, so the 401 goes out at once; a client that then
    # keeps sending the body a byte at a time must not keep the connection for ever.
    server = make_server({"server": {"header_timeout_s": 1.0, "keep_alive_s": 1.0}, "pool": {"spares": 0}})
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
        opened = time.monotonic()
        closed_at = None
        while closed_at is None and time.monotonic() < opened + 5:
            try:
                sock.sendall(b" ")
            except OSError:
                closed_at = time.monotonic()
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(65536) == b"":
                    closed_at = time.monotonic()
            except TimeoutError:
                pass  # still open: the pace of the attack, one byte per 0.2 s
            except ConnectionResetError:
                closed_at = time.monotonic()
    assert closed_at is not None, "a trickling body kept the connection open"
    assert closed_at - opened < 3.5
