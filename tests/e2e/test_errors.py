"""Bad input, upstream failures, the pool's limits and process hygiene, end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.server import cmdline
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _post(server, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(
        server.base_url + "/chat/completions",
        content=content,
        headers={"content-type": "application/json", **server.headers},
        timeout=30,
        **kwargs,
    )


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    openapi.validate(body, "ErrorResponse")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")
    return body["error"]


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[]", None),
        ({"model": "gpt-4o"}, "messages"),
        ({"messages": USER}, "model"),
        ({"model": 5, "messages": USER}, "model"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "gpt-4o", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "gpt-4o", "messages": USER, "temperature": 9}, "temperature"),
        ({"model": "gpt-4o", "messages": USER, "logprobs": True}, "logprobs"),
        ({"model": "gpt-4o", "messages": USER, "n": 0}, "n"),
        ({"model": "gpt-4o", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "gpt-4o", "messages": [{"role": "assistant", "content": "x"}]}, "messages"),
    ],
)
def test_bad_requests_get_400_with_param(server, upstream, body, param):
    error = _error(_post(server, body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert upstream.requests == []


def test_deeply_nested_json_is_a_400_not_a_crash(server):
    depth = 100_000
    nested = (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"metadata":' + b"[" * depth + b"]" * depth + b"}"
    )
    error = _error(_post(server, nested), 400)
    assert error["type"] == "invalid_request_error"
    assert server.health()["status"] == "ok"


def test_unknown_model_is_404_model_not_found(server, upstream):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-7-ultra", messages=USER)
    assert caught.value.code == "model_not_found"
    error = _error(_post(server, {"model": "gpt-7-ultra", "messages": USER}), 404)
    assert error["param"] == "model"
    assert upstream.requests == []


def test_unknown_route_and_method_are_openai_errors(server):
    assert (
        _error(httpx.get(server.base_url + "/nothing-here", headers=server.headers), 404)["type"]
        == "invalid_request_error"
    )
    assert (
        _error(httpx.get(server.base_url + "/chat/completions", headers=server.headers), 405)["code"]
        == "method_not_allowed"
    )


def test_body_over_the_limit_is_413(make_server):
    small = make_server({"server": {"max_body_bytes": 4096}, "pool": {"spares": 0}})
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert _error(_post(small, big), 413)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (Reply(status=429, error_type="rate_limit_error", error_message="slow down"), 429, "rate_limit_exceeded"),
        (Reply(status=529, error_type="overloaded_error", error_message="overloaded"), 503, "upstream_overloaded"),
        (
            Reply(status=400, error_type="invalid_request_error", error_message="bad thing"),
            400,
            "upstream_invalid_request",
        ),
        (Reply(status=401, error_type="authentication_error", error_message="bad key"), 503, "cli_auth_failed"),
        (Reply(status=500, error_type="api_error", error_message="boom"), 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_map_to_openai_statuses(server, upstream, reply, status, code, stream):
    upstream.on("fail-me", reply)
    response = _post(
        server, {"model": "gpt-4o", "messages": [{"role": "user", "content": "fail-me"}], "stream": stream}
    )
    error = _error(response, status)
    assert error["code"] == code
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1


def test_upstream_429_reaches_sdk_within_seconds(server, upstream):
    upstream.on("rate-limited", Reply(status=429, error_type="rate_limit_error", error_message="slow down"))
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=15)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "rate-limited"}])
    assert len(upstream.requests_matching("rate-limited")) == 1  # the CLI did not retry on its own


def test_error_after_stream_started_is_a_final_sse_event(make_server, upstream):
    # Nothing kept (warm_max 0): this is the path where the stopped turn's process is closed;
    # keeping it instead is tests/e2e/test_interrupt.py's subject.
    server = make_server({"server": {"request_timeout_s": 2}, "pool": {"spares": 0, "warm_max": 0}})
    upstream.on("half-then-hang", Reply(chunks=["partial ", "never"], hang_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "half-then-hang"}], "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2].removeprefix("data: "))
    openapi.validate(last, "ErrorResponse")
    assert last["error"]["code"] == "timeout"
    assert any("partial" in line for line in lines)
    assert server.wait_until(lambda: server.cli_pids() == [])


def test_disconnect_mid_stream_kills_the_cli(make_server, upstream):
    server = make_server({"pool": {"spares": 0, "warm_max": 0}})  # closed, not kept: see above
    upstream.on("hang-for-disconnect", Reply(chunks=["first ", "second"], hang_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hang-for-disconnect"}], "stream": True},
        timeout=30,
    ) as response:
        pids = []
        for line in response.iter_lines():
            if "first" in line:
                pids = server.cli_pids()  # before leaving the loop, which closes the response
                break
        assert len(pids) == 1
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)
    assert server.wait_until(lambda: server.health()["pool"]["busy"] == 0)
    sessions = server.workdir / "claude-config" / "sessions"
    assert not (sessions / f"{pids[0]}.json").exists()  # the CLI's status file went with it
    assert not list((server.workdir / "cli-work").glob("*/w*"))  # and so did its working directory
    assert not os.path.exists(f"/proc/{pids[0]}") or "claude" not in " ".join(cmdline(pids[0]))


def test_a_caller_who_gives_up_on_a_plain_request_stops_its_cli(make_server, upstream):
    """Not streamed: the server notices the disconnect itself (nothing is being written to the
    caller), stops the CLI at once instead of at the request timeout, and records a 499."""
    server = make_server({"pool": {"spares": 0, "warm_max": 0}, "server": {"request_timeout_s": 60}})
    upstream.on("hang-plain", Reply(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.base_url + "/chat/completions",
            headers=server.headers,
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hang-plain"}]},
            timeout=httpx.Timeout(30, read=2.0),
        )
    assert upstream.requests_matching("hang-plain")
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)
    assert server.wait_until(lambda: server.health()["pool"]["busy"] == 0)
    usage = httpx.get(server.base_url + "/usage", headers=server.headers).json()
    assert usage["requests"] == 1  # recorded once, as a request whose caller went away


def _hold_one_request(server, marker: str):
    """Starts a streamed request that keeps its CLI busy; returns (started event, release).

    A raw socket, because closing it from this thread interrupts a reader blocked on it at once.
    """
    started = threading.Event()
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": marker}], "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)

    def run():
        seen = b""
        try:
            while data := sock.recv(65536):
                seen += data
                if b"first" in seen:
                    started.set()
        except OSError:
            pass  # released

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def release():
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(15)

    return started, release


def test_queue_full_gives_429_with_retry_after(make_server, upstream):
    server = make_server({"pool": {"size": 1, "spares": 0, "max_queue": 0, "retry_after_s": 3}})
    upstream.on("hold-slot", Reply(chunks=["first ", "x"], hang_after=1))
    started, release = _hold_one_request(server, "hold-slot")
    assert started.wait(15)
    response = _post(server, {"model": "gpt-4o", "messages": USER})
    error = _error(response, 429)
    assert error["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "3"
    release()
    assert server.wait_until(lambda: server.health()["pool"]["busy"] == 0)


def test_queue_wait_timeout_gives_429(make_server, upstream):
    server = make_server({"pool": {"size": 1, "spares": 0, "max_queue": 4, "queue_timeout_s": 1}})
    upstream.on("hold-slot-2", Reply(chunks=["first ", "x"], hang_after=1))
    started, release = _hold_one_request(server, "hold-slot-2")
    assert started.wait(15)
    response = _post(server, {"model": "gpt-4o", "messages": USER})
    assert _error(response, 429)["message"].startswith("waited 1s")
    release()


def test_no_user_text_in_any_process_argv(make_server, upstream):
    server = make_server({"pool": {"spares": 1}})
    marker = "SECRET-MARKER-7f3a"
    upstream.on(marker, Reply(chunks=["first ", "x"], hang_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": f"system {marker}"},
                {"role": "user", "content": f"old {marker}"},
                {"role": "assistant", "content": f"reply {marker}"},
                {"role": "user", "content": f"new {marker}"},
            ],
            "stream": True,
        },
        timeout=30,
    ) as response:
        pids = []
        for line in response.iter_lines():
            if "first" in line:
                pids = server.cli_pids()
                argvs = [cmdline(pid) for pid in pids]
                break
    assert pids
    for argv in argvs:
        assert not any(marker in part for part in argv)
        joined = " ".join(argv)
        assert "--strict-mcp-config" in joined and "--no-session-persistence" in joined
        assert argv[argv.index("--tools") + 1] == ""
    server_argv = cmdline(server.proc.pid)
    assert not any(marker in part for part in server_argv)


def test_shutdown_stops_every_cli_process(make_server, upstream):
    server = make_server({"pool": {"spares": 2}, "server": {"shutdown_grace_s": 1}})
    upstream.on("hold-at-shutdown", Reply(chunks=["first ", "x"], hang_after=1))
    started, release = _hold_one_request(server, "hold-at-shutdown")
    assert started.wait(15)
    assert server.wait_until(lambda: len(server.cli_pids()) == 3)
    pids = server.cli_pids()
    server.stop()  # SIGTERM with a request in flight
    release()
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and "claude" in " ".join(cmdline(pid))]
    assert alive == []


def _fake_cli(tmp_path, body: str):
    script = tmp_path / "claude"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo \'2.1.328 (Claude Code)\'; exit 0; fi\n{body}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_cli_crash_is_a_502_saying_what_happened(make_server, tmp_path):
    fake = _fake_cli(tmp_path, "echo 'segfault in the fake cli' >&2; exit 3")
    server = make_server({"claude": {"binary": str(fake)}, "pool": {"spares": 0}})
    error = _error(_post(server, {"model": "gpt-4o", "messages": USER}), 502)
    assert error["code"] == "cli_failed"
    assert "exit code 3" in error["message"]
    assert "segfault in the fake cli" in error["message"]


def test_missing_cli_degrades_health_and_requests_get_503(make_server, tmp_path):
    server = make_server({"claude": {"binary": str(tmp_path / "no-such-claude")}})
    health = server.health()
    assert health["status"] == "degraded"
    assert health["cli"]["found"] is False
    assert "not found" in health["cli"]["error"]
    assert _error(_post(server, {"model": "gpt-4o", "messages": USER}), 503)["code"] == "cli_unavailable"


def test_server_killed_with_sigkill_leaves_no_cli_running(make_server, upstream):
    # The children sit in their own process groups; the parent-death signal ends them.
    server = make_server({"pool": {"spares": 2}})
    upstream.on("hold-at-sigkill", Reply(chunks=["first ", "x"], hang_after=1))
    started, release = _hold_one_request(server, "hold-at-sigkill")
    assert started.wait(15)
    assert server.wait_until(lambda: len(server.cli_pids()) == 3)
    pids = server.cli_pids()
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    release()

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and "claude" in " ".join(cmdline(pid))

    assert server.wait_until(lambda: not any(running(pid) for pid in pids), timeout=15)


def test_sigterm_lets_an_in_flight_stream_finish_then_stops(make_server, upstream):
    server = make_server({"pool": {"spares": 0}, "server": {"shutdown_grace_s": 10}})
    upstream.on("draining", Reply(chunks=["one ", "two ", "three ", "four"], chunk_delay=0.3))
    received, serving = [], []
    late: list[str] = []

    def new_request_while_draining() -> None:
        # Poll with a deadline: the listener closes soon after the signal, then no new work gets in.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    server.base_url + "/chat/completions",
                    headers=server.headers,
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "too late"}]},
                    timeout=5,
                )
            except httpx.TransportError:
                late.append("refused")
                return
            if answer.status_code == 503:
                late.append(answer.json()["error"]["code"])
                return
            time.sleep(0.02)
        late.append("accepted")

    probe = threading.Thread(target=new_request_while_draining)
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "draining"}], "stream": True},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            received.append(line)
            if "one " in line and not serving:
                serving = server.cli_pids()
                server.proc.send_signal(signal.SIGTERM)  # mid-stream
                probe.start()
    received = [line for line in received if line]
    assert received[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content", "")
        for line in received
        if line.startswith("data: {") and '"choices":[{' in line
    )
    assert text == "one two three four"
    probe.join(timeout=10)
    assert late in (["refused"], ["shutting_down"])
    assert not upstream.requests_matching("too late")  # no new work ran during the drain
    # uvicorn re-raises SIGTERM after its graceful shutdown, so "killed by SIGTERM" is a clean exit.
    assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log_path.read_text()
    assert serving
    assert not [pid for pid in serving if os.path.exists(f"/proc/{pid}") and "claude" in " ".join(cmdline(pid))]


def test_a_401_echoes_no_part_of_the_credential(server):
    secret = "sk-cp-Zq9Xw7Vu5Ts3Rq1Po"
    for headers in ({"Authorization": f"Bearer {secret}"}, {"api-key": secret}, {"x-api-key": secret}):
        response = httpx.get(server.base_url + "/models", headers=headers)
        error = _error(response, 401)
        assert error["code"] == "invalid_api_key"
        for start in range(len(secret) - 3):
            assert secret[start : start + 4] not in response.text  # no four characters of it in a row
    admin = httpx.get(server.url + "/admin/projects", headers={"Authorization": f"Bearer {secret}"})
    assert admin.status_code == 401 and "Zq9X" not in admin.text
