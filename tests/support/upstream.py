"""A scripted Anthropic Messages API on 127.0.0.1 for driving the real Claude CLI.

The CLI streams `POST /v1/messages`; this server answers with Anthropic SSE events. Tests
register rules (`upstream.on("keyword", Reply(...))`) matched against the text of the last
user message; anything unmatched gets an echo reply, so a test can tell which prompt the
model actually saw. Every request body is recorded for assertions on what the upstream got.
A reply may think first (`thinking`, `signature`, `redacted_thinking`): streamed as Anthropic
does, a thinking block's `thinking_delta` pieces then its `signature_delta`.
A request with `stream: false` or none (the CLI's retry of a broken stream, its check of a model
id) gets one JSON message.
`plan_for(token, headers)` plays a subscriber's account per OAuth token (the CLI sends it as
`Authorization: Bearer <token>`): its plan headers go with every answer to that token, and a
plan whose status is `rejected` (without overage in use) answers 429, as Anthropic does.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.tokens import count_tokens


@dataclass
class Reply:
    """What the upstream answers to a matching request."""

    text: str | None = None  # None: echo the last user text as "Echo: <text>"
    chunks: list[str] | None = None  # explicit text deltas; default: split on spaces
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "scripted error"
    retry_after: str | None = None
    first_delay: float = 0.0  # seconds before the first event
    chunk_delay: float = 0.0  # seconds between text deltas
    hang: bool = False  # send message_start, then nothing until the client goes away
    hang_after: int | None = None  # send this many text deltas, then hang
    cut_after: int | None = None  # send this many text deltas, then drop the connection
    # Break the stream after this many deltas, the way `break_with` says: "reset" drops the
    # connection with a TCP reset, "error" sends an `event: error` of error_type and
    # error_message inside the 200 stream (as Anthropic does for overloaded_error).
    break_after: int | None = None
    break_with: str = "reset"
    break_in_tool: bool = False  # count the tool calls' input_json deltas instead of text deltas
    json_pieces: int = 1  # how many input_json deltas each tool call's input is sent in
    garbage: bool = False  # answer 200 with bytes that are not server-sent events
    input_tokens: int = 11
    # Report as input tokens the whole request counted with tiktoken (system prompt, messages,
    # tools) instead of `input_tokens`, as a real upstream counts what the CLI sent.
    count_input: bool = False
    output_tokens: int = 7
    cache_read: int = 0
    cache_creation: int = 0
    stop_reason: str = "end_turn"
    tool_use: dict[str, Any] | None = None  # {"name":..., "input": {...}}
    tool_uses: list[dict[str, Any]] | None = None  # several tool calls in one answer
    # Thinking before the answer: its text (streamed as thinking_delta pieces split on spaces)
    # and signature (one signature_delta), and how many redacted_thinking blocks follow it.
    thinking: str | None = None
    signature: str = "sig_scripted"
    redacted_thinking: int = 0
    thinking_tokens: int | None = None  # reported as usage.output_tokens_details.thinking_tokens
    times: int | None = None  # how many requests this rule answers; None: forever
    # Response headers of a subscription's plan (`anthropic-ratelimit-unified-*`), sent with the
    # answer, an error status too; `plan_headers()` builds them.
    plan_headers: dict[str, str] | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system_text(self) -> str:
        system = self.body.get("system") or []
        if isinstance(system, str):
            return system
        return "\n".join(block.get("text", "") for block in system)

    @property
    def turns(self) -> list[tuple[str, str]]:
        """(role, text) of each user/assistant message, text blocks joined."""
        out = []
        for message in self.body.get("messages", []):
            if message["role"] not in ("user", "assistant"):
                continue
            out.append((message["role"], content_text(message["content"])))
        return out


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def tool_result_text(body: dict[str, Any]) -> str:
    """The text of the tool results in the last user message."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message["content"]
            if isinstance(content, str):
                return ""
            parts = [block.get("content") for block in content if block.get("type") == "tool_result"]
            return " ".join(part if isinstance(part, str) else content_text(part or []) for part in parts)
    return ""


def match_text(body: dict[str, Any]) -> str:
    """What rules match against: the last user message's text, and the tool results it carries."""
    return last_user_text(body) + " " + tool_result_text(body)


def comparable_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a request body without what differs between any two processes and the model
    never sees: the CLI's billing line (it hashes the first prompt) and `metadata` (the device id
    of each server's config directory, the session id of each process)."""
    copied: dict[str, Any] = json.loads(json.dumps(body))
    copied["system"] = [block for block in copied.get("system", []) if "billing-header" not in block.get("text", "")]
    copied.pop("metadata", None)
    return copied


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return content_text(message["content"])
    return ""


@dataclass
class _Rule:
    match: str
    reply: Reply
    used: int = 0


class ScriptedUpstream:
    """Threaded HTTP server speaking enough of the Messages API for the Claude CLI."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._rules: list[_Rule] = []
        self._plans: dict[str, dict[str, str]] = {}  # OAuth token -> its plan's headers
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, match: str, reply: Reply) -> None:
        with self._lock:
            self._rules.insert(0, _Rule(match, reply))

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._plans.clear()
            self.requests.clear()

    def plan_for(self, token: str, headers: dict[str, str] | None) -> None:
        """The plan headers of the account whose OAuth token is `token` (None: it has none)."""
        with self._lock:
            if headers is None:
                self._plans.pop(token, None)
            else:
                self._plans[token] = dict(headers)

    def tokens(self, needle: str) -> list[str]:
        """The OAuth token of each request whose text holds `needle`, in order."""
        return [bearer(r.headers) or "" for r in self.requests_matching(needle)]

    def requests_matching(self, needle: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if needle in match_text(r.body)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def _record_and_pick(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        text = match_text(body)
        with self._lock:
            self.requests.append(Recorded(path, headers, body))
            plan = self._plans.get(bearer(headers) or "")
            for rule in self._rules:
                if rule.match in text and (rule.reply.times is None or rule.used < rule.reply.times):
                    rule.used += 1
                    return _under_plan(rule.reply, plan)
        return _under_plan(Reply(), plan)


def _make_handler(upstream: ScriptedUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # http.server naming
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            body = json.loads(raw or b"{}")
            if not self.path.startswith("/v1/messages"):
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                return
            if self.path.startswith("/v1/messages/count_tokens"):
                self._json(200, {"input_tokens": 10})
                return
            reply = upstream._record_and_pick(self.path, dict(self.headers), body)
            if reply.first_delay:
                time.sleep(reply.first_delay)
            if reply.garbage:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b"\x00\xff not an event stream {{{ \n\n" * 3)
                self.close_connection = True
                return
            if reply.status != 200:
                extra = {"retry-after": reply.retry_after} if reply.retry_after else {}
                extra.update(reply.plan_headers or {})
                payload = {"type": "error", "error": {"type": reply.error_type, "message": reply.error_message}}
                self._json(reply.status, payload, extra)
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # Anthropic's default: no `stream` is a plain JSON answer (the CLI checks a full
                # model id with such a request, `max_tokens: 1`, before it switches to it).
                if body.get("stream", False):
                    self._stream(body, reply)
                else:
                    self._whole(body, reply)

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_scripted")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _event(self, name: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def _hold(self) -> None:
            # Hold the connection open until the client gives up or the server stops.
            while True:
                time.sleep(0.05)
                try:
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
                except OSError:
                    return

        def _break(self, reply: Reply) -> None:
            """Ends the response mid-way, as `reply.break_with` says."""
            if reply.break_with == "error":
                error = {"type": "error", "error": {"type": reply.error_type, "message": reply.error_message}}
                self._event("error", error)
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            # SO_LINGER 0: close sends a reset (ECONNRESET at the client), not an orderly end.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

        def _breaks_before(self, reply: Reply, n: int, *, in_tool: bool) -> bool:
            """Breaks the stream before its delta `n` (or after the last, n == their count) when
            the reply says so; True if it did."""
            if not in_tool and reply.hang_after is not None and n >= reply.hang_after:
                self._hold()
                return True
            if not in_tool and reply.cut_after is not None and n >= reply.cut_after:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-stream, no message_stop
                return True
            if reply.break_after is not None and in_tool == reply.break_in_tool and n >= reply.break_after:
                self._break(reply)
                return True
            return False

        def _stream_thinking(self, reply: Reply) -> int:
            """The reply's thinking blocks as Anthropic streams them; returns the next index."""
            index = 0
            for block in _thinking_blocks(reply):
                thinking = block["type"] == "thinking"
                start = {"type": "thinking", "thinking": "", "signature": ""} if thinking else block
                self._event(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
                )
                if thinking:
                    for piece in _split_words(block["thinking"]):
                        delta = {"type": "thinking_delta", "thinking": piece}
                        self._event(
                            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                        )
                    delta = {"type": "signature_delta", "signature": block["signature"]}
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            return index

        def _whole(self, body: dict[str, Any], reply: Reply) -> None:
            """A non-streaming request: one JSON message, or the reply's fault before any of it."""
            if reply.hang or reply.hang_after is not None:
                self._hold()
                return
            if reply.cut_after is not None or reply.break_after is not None:
                # A fault that persists: the CLI's non-streaming retry fails at once too (a
                # dropped connection would have it wait and retry for minutes).
                overloaded = reply.break_with == "error" and reply.error_type == "overloaded_error"
                error_type = reply.error_type if reply.break_with == "error" else "api_error"
                payload = {"type": "error", "error": {"type": error_type, "message": reply.error_message}}
                self._json(529 if overloaded else 500, payload)
                return
            content: list[dict[str, Any]] = _thinking_blocks(reply)
            text = "".join(_chunks(body, reply))
            if text:
                content.append({"type": "text", "text": text})
            calls = _calls(reply)
            content += [
                {"type": "tool_use", "id": call_id, "name": name, "input": args} for call_id, name, args in calls
            ]
            usage = dict(_usage(body, reply), **_output_usage(reply))
            message = dict(_message(body, usage), content=content)
            message["stop_reason"] = "tool_use" if calls else reply.stop_reason
            self._json(200, message)

        def _stream(self, body: dict[str, Any], reply: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            for key, value in (reply.plan_headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.close_connection = True
            message = _message(body, dict(_usage(body, reply), output_tokens=1))
            self._event("message_start", {"type": "message_start", "message": message})
            if reply.hang:
                self._hold()
                return
            index = self._stream_thinking(reply)
            chunks = _chunks(body, reply)
            if chunks:
                self._event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                for n, chunk in enumerate(chunks):
                    if self._breaks_before(reply, n, in_tool=False):
                        return
                    if n and reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                    delta = {"type": "text_delta", "text": chunk}
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                if self._breaks_before(reply, len(chunks), in_tool=False):
                    return
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            stop_reason = reply.stop_reason
            for call_id, name, args in _calls(reply):
                stop_reason = "tool_use"
                block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
                self._event(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
                )
                pieces = _pieces(json.dumps(args), reply.json_pieces)
                for n, piece in enumerate(pieces):
                    if self._breaks_before(reply, n, in_tool=True):
                        return
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                if self._breaks_before(reply, len(pieces), in_tool=True):
                    return
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": _output_usage(reply),
                },
            )
            self._event("message_stop", {"type": "message_stop"})

    return Handler


def bearer(headers: dict[str, str]) -> str | None:
    """The token of an `Authorization: Bearer` header, whatever its case."""
    for key, value in headers.items():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return None


def _under_plan(reply: Reply, plan: dict[str, str] | None) -> Reply:
    """`reply` as the account's plan lets it go: with its headers, or a 429 when it is refused."""
    if plan is None or reply.plan_headers is not None:
        return reply
    refused = plan.get("anthropic-ratelimit-unified-status") == "rejected"
    if refused and plan.get("anthropic-ratelimit-unified-overage-in-use") != "true":
        return Reply(
            status=429, error_type="rate_limit_error", error_message="rate limited (scripted plan)", plan_headers=plan
        )
    return replace(reply, plan_headers=plan)


def plan_headers(
    *,
    status: str = "allowed",
    five_hour: tuple[float, int, str] | None = None,
    seven_day: tuple[float, int, str] | None = None,
    claim: str = "five_hour",
    overage: bool = False,
) -> dict[str, str]:
    """The `anthropic-ratelimit-unified-*` headers of a subscription's answer: the overall status,
    and per window (utilization as a fraction, reset as unix seconds, status). `overage`: paid
    extra usage is in use (the upstream still answers a `rejected` plan)."""
    headers = {"anthropic-ratelimit-unified-status": status, "anthropic-ratelimit-unified-representative-claim": claim}
    resets = []
    for short, window in (("5h", five_hour), ("7d", seven_day)):
        if window is None:
            continue
        utilization, reset, window_status = window
        resets.append(reset)
        headers[f"anthropic-ratelimit-unified-{short}-utilization"] = str(utilization)
        headers[f"anthropic-ratelimit-unified-{short}-reset"] = str(reset)
        headers[f"anthropic-ratelimit-unified-{short}-status"] = window_status
    if resets:
        headers["anthropic-ratelimit-unified-reset"] = str(resets[0])
    if overage:
        headers["anthropic-ratelimit-unified-overage-status"] = "allowed"
        headers["anthropic-ratelimit-unified-overage-in-use"] = "true"
    return headers


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _chunks(body: dict[str, Any], reply: Reply) -> list[str]:
    text = reply.text if reply.text is not None else "Echo: " + last_user_text(body)
    return reply.chunks if reply.chunks is not None else _split_words(text)


def _thinking_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking is not None:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": reply.signature})
    blocks += [{"type": "redacted_thinking", "data": f"redacted_scripted_{n}"} for n in range(reply.redacted_thinking)]
    return blocks


def _calls(reply: Reply) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, input) of each tool call the reply makes."""
    calls = list(reply.tool_uses or []) + ([reply.tool_use] if reply.tool_use is not None else [])
    # Real ids never prefix one another; the CLI mispairs results of ids that do.
    return [
        (
            call.get("id") or ("toolu_scripted" if len(calls) == 1 else f"toolu_scripted_{n}"),
            call["name"],
            call.get("input", {}),
        )
        for n, call in enumerate(calls)
    ]


def _pieces(text: str, count: int) -> list[str]:
    size = max(-(-len(text) // max(count, 1)), 1)
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    counted = [body.get("system"), body.get("messages"), body.get("tools")]
    return {
        "input_tokens": count_tokens(json.dumps(counted)) if reply.count_input else reply.input_tokens,
        "cache_read_input_tokens": reply.cache_read,
        "cache_creation_input_tokens": reply.cache_creation,
    }


def _output_usage(reply: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {"output_tokens": reply.output_tokens}
    if reply.thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": reply.thinking_tokens}
    return usage


def _message(body: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-unknown"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
