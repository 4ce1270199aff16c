"""Chat completions over one WebSocket, several interleaved."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _url(server) -> str:
    return server.url.replace("http://", "ws://") + "/v1/ws"


def _request(client_id: str, content: str, **extra) -> str:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}
    return json.dumps({"id": client_id, "body": body})


def test_two_requests_interleave_on_one_socket(server, upstream):
    upstream.on("ws slow", Reply(chunks=["s1 ", "s2 ", "s3"], chunk_delay=0.6))
    upstream.on("ws fast", Reply(chunks=["f1 ", "f2"]))
    with connect(_url(server), additional_headers={"Authorization": f"Bearer {server.api_key}"}) as socket:
        socket.send(_request("slow", "ws slow"))
        socket.send(_request("fast", "ws fast", stream_options={"include_usage": True}))
        texts: dict[str, str] = {"slow": "", "fast": ""}
        order: list[str] = []
        done: set[str] = set()
        while done != {"slow", "fast"}:
            message = json.loads(socket.recv(timeout=30))
            if message.get("done"):
                done.add(message["id"])
                order.append(message["id"])
                continue
            chunk = message["chunk"]
            openapi.validate(chunk, "CreateChatCompletionStreamResponse")
            if chunk["choices"]:
                texts[message["id"]] += chunk["choices"][0]["delta"].get("content", "")
            elif message["id"] == "fast":
                assert chunk["usage"]["completion_tokens"] == 7
    assert texts == {"slow": "s1 s2 s3", "fast": "f1 f2"}
    assert order == ["fast", "slow"]  # the fast one finished while the slow one was still streaming


def test_errors_are_per_request(server, upstream):
    with connect(_url(server), additional_headers={"Authorization": f"Bearer {server.api_key}"}) as socket:
        socket.send(_request("bad", "x", model="gpt-nope"))
        error = json.loads(socket.recv(timeout=30))
        assert error["id"] == "bad" and error["error"]["code"] == "model_not_found"
        socket.send("not json")
        assert json.loads(socket.recv(timeout=30))["error"]["type"] == "invalid_request_error"
        socket.send(_request("good", "ws still works"))
        messages = [json.loads(socket.recv(timeout=30))]
        while "done" not in messages[-1]:
            messages.append(json.loads(socket.recv(timeout=30)))
        assert messages[-1] == {"id": "good", "done": True}
        text = "".join(
            m["chunk"]["choices"][0]["delta"].get("content", "") for m in messages[:-1] if m["chunk"]["choices"]
        )
        assert text == "Echo: ws still works"


def test_a_socket_needs_a_key(server):
    with pytest.raises(InvalidStatus), connect(_url(server)):
        pass
