"""`/v1/ws`: chat completions over one WebSocket, several at a time.

The connection authenticates once, with the same headers as HTTP. Each client message is
`{"id": "<client id>", "body": {<chat completion request>}}`; the answers are the very chunk
objects SSE would carry, as `{"id": ..., "chunk": {...}}`, then `{"id": ..., "done": true}`, or
`{"id": ..., "error": {...}}` with OpenAI's error object. Requests run concurrently and their
messages interleave; closing the socket stops every request it started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from budgets.keys import KeyStore, Principal
from core.errors import InvalidRequest, ProxyError
from proxy.auth import FailedAuthLimiter, authenticate
from proxy.batches.store import BatchStore
from proxy.chat.render import sse_stream
from proxy.chat.translate import chat_submission
from proxy.documents import FileReader, file_reader
from proxy.pipeline import CacheUse, Pipeline
from proxy.request_ids import request_id
from proxy.settings import ImageSettings, Settings
from proxy.wire.chat_request import ChatCompletionRequest

log = logging.getLogger("claude_proxy.ws")

_encoder = msgspec.json.Encoder()
MAX_IN_FLIGHT = 16


class WsRequest(msgspec.Struct):
    id: str
    body: ChatCompletionRequest


_decoder = msgspec.json.Decoder(WsRequest)


class _Connection:
    def __init__(
        self, socket: WebSocket, principal: Principal, pipeline: Pipeline, images: ImageSettings, files: FileReader
    ) -> None:
        self.socket = socket
        self.principal = principal
        self.pipeline = pipeline
        self.images = images
        self.files = files
        self.lock = asyncio.Lock()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:  # one frame at a time
            await self.socket.send_bytes(_encoder.encode(message))

    async def serve(self, client_id: str, body: ChatCompletionRequest) -> None:
        try:
            # Answers over a socket always stream.
            submission = await chat_submission(msgspec.structs.replace(body, stream=True), self.images, self.files)
            outcome = await self.pipeline.run(
                submission, self.principal, request_id=request_id(self.socket.scope), cache=CacheUse()
            )
            async for event in sse_stream(outcome):
                payload = event.removeprefix(b"data: ").strip()
                if payload == b"[DONE]":
                    await self.send({"id": client_id, "done": True})
                else:
                    decoded = msgspec.json.decode(payload)
                    key = "error" if "error" in decoded else "chunk"
                    await self.send({"id": client_id, key: decoded[key] if key == "error" else decoded})
        except ProxyError as exc:
            await self.send({"id": client_id, "error": msgspec.to_builtins(exc.to_body().error)})
        finally:
            self.tasks.pop(client_id, None)


@websocket("/v1/ws")
async def chat_socket(
    socket: WebSocket[Any, Any, Any],
    pipeline: Pipeline,
    keys: KeyStore,
    auth_failures: FailedAuthLimiter,
    settings: Settings,
    batch_store: BatchStore,
) -> None:
    try:
        principal = authenticate(socket, keys, auth_failures)
    except ProxyError as exc:
        await socket.close(code=4401, reason=exc.message[:120])
        return
    await socket.accept()
    files = file_reader(batch_store, principal.project.name)
    connection = _Connection(socket, principal, pipeline, settings.images, files)
    try:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                break
            # Text and binary frames both carry JSON.
            frame = event.get("bytes") or event.get("text")
            raw = frame if isinstance(frame, (bytes, str)) else b""
            try:
                message = _decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                error = InvalidRequest(f"Each message is {{'id': ..., 'body': {{chat request}}}}: {exc}")
                await connection.send({"id": None, "error": msgspec.to_builtins(error.to_body().error)})
                continue
            if message.id in connection.tasks or len(connection.tasks) >= MAX_IN_FLIGHT:
                error = InvalidRequest("That id is still running, or too many requests are in flight.", param="id")
                await connection.send({"id": message.id, "error": msgspec.to_builtins(error.to_body().error)})
                continue
            connection.tasks[message.id] = asyncio.create_task(connection.serve(message.id, message.body))
    except WebSocketDisconnect:
        pass
    finally:
        for task in list(connection.tasks.values()):
            task.cancel()
        await asyncio.gather(*connection.tasks.values(), return_exceptions=True)
