"""`POST /v1/completions`: legacy text completions (LlamaIndex's `OpenAILike` calls it by default).

Each prompt runs as a one-message chat completion through the same pipeline (model selection, admission, pool);
only the shapes of the request and the response differ.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgspec
from litestar import Request, Response, post

from budgets.keys import Principal
from core.errors import InvalidRequest
from core.types import TokenUsage
from proxy.chat.render import ChunkWriter, sse_stream, to_usage
from proxy.chat.translate import chat_submission
from proxy.pipeline import NO_CACHE, ChoiceThinking, Outcome, Pipeline
from proxy.request_ids import request_id
from proxy.routes._http import decode_json, json_response, sse_response, unless_disconnected
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
    texts = [item for item in prompt if isinstance(item, str)]
    if len(texts) == len(prompt):
        return texts
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
        for name in (
            "model",
            "max_tokens",
            "n",
            "stop",
            "stream",
            "stream_options",
            "temperature",
            "top_p",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "user",
        )
    }
    fields["messages"] = [{"role": "user", "content": prompt}]
    return msgspec.convert(
        {k: v for k, v in fields.items() if v is not None}, ChatCompletionRequest, from_attributes=True
    )


class TextChunkWriter(ChunkWriter):
    """Legacy streaming: every chunk is a `text_completion` object; there is no role chunk."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        super().__init__(model, include_usage=include_usage)
        self.id = _completion_id()

    def _text_chunk(self, choices: list[TextChoice], usage: Any = msgspec.UNSET) -> bytes:
        return sse_event(
            TextCompletion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage)
        )

    def role(self, index: int) -> bytes:
        return b""

    def text(self, index: int, text: str) -> bytes:
        return self._text_chunk([TextChoice(text=text, index=index, finish_reason=None)])

    def thinking(self, event: ChoiceThinking) -> bytes:
        return b""  # legacy completions have no place for reasoning

    def finish(self, index: int, reason: str) -> bytes:
        return self._text_chunk([TextChoice(text="", index=index, finish_reason=reason)])  # type: ignore[arg-type]  # a Completed's reason, one of OpenAI's

    def usage(self, parts: list[TokenUsage]) -> bytes:
        return self._text_chunk([], usage=to_usage(parts))


@post("/v1/completions", status_code=200)
async def completions(
    request: Request[Any, Any, Any], principal: Principal, pipeline: Pipeline, settings: Settings
) -> Response[Any]:
    rid = request_id(request.scope)
    body = decode_json(await request.body(), completion_request_decoder)
    _check(body)
    prompts = _prompts(body)
    if body.stream and len(prompts) > 1:
        raise InvalidRequest("Streaming takes one prompt at a time.", param="prompt")

    async def run(prompt: str) -> Outcome:
        submission = await chat_submission(as_chat(body, prompt), settings.images)
        return await pipeline.run(submission, principal, request_id=rid, cache=NO_CACHE)

    if body.stream:
        outcome = await run(prompts[0])
        return sse_response(sse_stream(outcome, TextChunkWriter), outcome.headers)
    outcomes = await unless_disconnected(request, asyncio.gather(*(run(prompt) for prompt in prompts)))
    n = body.n or 1
    choices = [
        TextChoice(text=choice.text, index=p * n + i, finish_reason=choice.finish_reason)  # type: ignore[arg-type]  # one of OpenAI's reasons
        for p, outcome in enumerate(outcomes)
        if outcome.result is not None
        for i, choice in enumerate(outcome.result.choices)
    ]
    usage = to_usage([part for outcome in outcomes if outcome.result is not None for part in outcome.result.usages])
    return json_response(
        TextCompletion(id=_completion_id(), created=int(time.time()), model=body.model, choices=choices, usage=usage),
        outcomes[0].headers,
    )
