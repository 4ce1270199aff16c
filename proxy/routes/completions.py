"""`POST /v1/completions`: legacy text completions (LlamaIndex's `OpenAILike` calls it by default).

Each prompt runs as a one-message chat completion through the same routing, metering and pool;
only the shapes of the request and the response differ.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgspec
from litestar import Request, Response, post

from core.types import TokenUsage
from proxy.auth import Principal
from proxy.chat.service import ChatService, ChunkWriter, to_usage
from proxy.chat.prepare import prepare
from core.errors import InvalidRequest
from proxy.metering import Metering
from proxy.middleware import request_id
from proxy.routes.chat import _sse_response, decode_json, json_response
from proxy.routing import RequestRouter
from proxy.settings import Settings
from proxy.sse import sse_event
from proxy.wire.chat_request import ChatCompletionRequest
from proxy.wire.completions import CompletionRequest, TextChoice, TextCompletion, completion_request_decoder


def _completion_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def _prompts(body: CompletionRequest) -> list[str]:
    prompt = body.prompt
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise InvalidRequest("'prompt' must not be empty.", param="prompt")
    if all(isinstance(item, str) for item in prompt):
        return list(prompt)  # type: ignore[arg-type]
    raise InvalidRequest("Token arrays as prompts are not supported; send text.", param="prompt")


def _check(body: CompletionRequest) -> None:
    if body.echo:
        raise InvalidRequest("'echo' is not supported.", param="echo", code="unsupported_parameter")
    if body.suffix:
        raise InvalidRequest("'suffix' is not supported.", param="suffix", code="unsupported_parameter")
    if body.logprobs is not None:
        raise InvalidRequest("logprobs are not available from Claude.", param="logprobs", code="unsupported_parameter")
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise InvalidRequest("'best_of' must equal 'n' (no ranking is done).", param="best_of")


def as_chat(body: CompletionRequest, prompt: str) -> ChatCompletionRequest:
    """The chat request one prompt stands for."""
    fields: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("model", "max_tokens", "n", "stop", "stream", "stream_options", "temperature", "top_p", "seed",
                     "presence_penalty", "frequency_penalty", "logit_bias", "user")
    }
    fields["messages"] = [{"role": "user", "content": prompt}]
    return msgspec.convert({k: v for k, v in fields.items() if v is not None}, ChatCompletionRequest, from_attributes=True)


class TextChunkWriter(ChunkWriter):
    """Legacy streaming: every chunk is a `text_completion` object; there is no role chunk."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        super().__init__(model, include_usage=include_usage)
        self.id = _completion_id()

    def _text_chunk(self, choices: list[TextChoice], usage: Any = msgspec.UNSET) -> bytes:
        return sse_event(TextCompletion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage))

    def role(self, index: int) -> bytes:
        return b""

    def text(self, index: int, text: str) -> bytes:
        return self._text_chunk([TextChoice(text=text, index=index, finish_reason=None)])

    def finish(self, index: int, reason: str) -> bytes:
        return self._text_chunk([TextChoice(text="", index=index, finish_reason=reason)])  # type: ignore[arg-type]

    def usage(self, parts: list[TokenUsage]) -> bytes:
        return self._text_chunk([], usage=to_usage(parts))


@post("/v1/completions", status_code=200)
async def completions(
    request: Request,
    principal: Principal, routing: RequestRouter, chat: ChatService, metering: Metering, settings: Settings
) -> Response[Any]:
    rid = request_id(request.scope)
    body = decode_json(await request.body(), completion_request_decoder)
    _check(body)
    prompts = _prompts(body)
    if body.stream and len(prompts) > 1:
        raise InvalidRequest("Streaming takes one prompt at a time.", param="prompt")

    async def run(prompt: str) -> Any:
        chat_request = as_chat(body, prompt)
        decision, plan = await prepare(chat_request, routing, settings, request_id=rid)
        admission = await metering.admit(principal, plan, decision.route, request_id=rid)
        if plan.stream:
            stream = await chat.open_stream(plan, model=body.model, finish=admission.finish, writer=TextChunkWriter)
            return stream, decision, admission
        return await chat.complete(plan, model=body.model, finish=admission.finish), decision, admission

    if body.stream:
        stream, decision, admission = await run(prompts[0])
        return _sse_response(stream, {"x-claude-model": decision.route.claude_model, **admission.headers})
    results = await asyncio.gather(*(run(prompt) for prompt in prompts))
    n = body.n or 1
    choices = [
        TextChoice(text=choice.message.content or "", index=p * n + choice.index, finish_reason=choice.finish_reason)
        for p, (completion, _, _) in enumerate(results)
        for choice in completion.choices
    ]
    usage = to_usage([])
    for completion, _, _ in results:
        usage.prompt_tokens += completion.usage.prompt_tokens
        usage.completion_tokens += completion.usage.completion_tokens
        usage.total_tokens += completion.usage.total_tokens
        usage.prompt_tokens_details.cached_tokens += completion.usage.prompt_tokens_details.cached_tokens
    _, decision, admission = results[0]
    return json_response(
        TextCompletion(id=_completion_id(), created=int(time.time()), model=body.model, choices=choices, usage=usage),
        {"x-claude-model": decision.route.claude_model, **admission.headers},
    )
