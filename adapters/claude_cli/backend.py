"""The Claude Code CLI as a `ChatBackend`: one pooled process per completion."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import msgspec

from adapters.claude_cli.command import LaunchSpec, build_env, decide_bare
from adapters.claude_cli.discovery import CliInfo, find_cli
from adapters.claude_cli.events import (
    AssistantLine,
    ContentBlockDelta,
    MessageDelta,
    MessageStart,
    ResultLine,
    StreamEventLine,
    SystemLine,
    TextDeltaBody,
)
from adapters.claude_cli.pool import CliPool
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.session_file import config_dir
from adapters.types import (
    BackendEvent,
    Block,
    Completed,
    CompletionJob,
    Started,
    TextBlock,
    TextDelta,
    TokenUsage,
    Turn,
)
from proxy.errors import (
    CliFailed,
    CliUnavailable,
    ProxyError,
    RateLimited,
    StructuredOutputFailed,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
)
from proxy.settings import Settings

log = logging.getLogger("claude_proxy.cli")


class ClaudeCliBackend:
    """Runs jobs on pooled CLI processes; translates CLI output and failures into domain terms."""

    def __init__(self, settings: Settings, *, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.cli: CliInfo | None = None
        self.cli_error: str | None = None
        self.pool: CliPool | None = None

    async def start(self) -> None:
        claude = self.settings.claude
        try:
            self.cli = await asyncio.to_thread(find_cli, claude.binary)
        except CliUnavailable as exc:
            # The server still starts: /health says what is missing and requests get a clear 503.
            self.cli_error = exc.message
            log.error("%s", exc.message)
            return
        log.info("using Claude CLI %s at %s", self.cli.version, self.cli.path)
        spec = LaunchSpec(
            binary=self.cli.path,
            bare=decide_bare(claude.bare, self.environ),
            max_retries=claude.max_retries,
            env=build_env(
                self.environ,
                passthrough=claude.env_passthrough,
                extra=claude.env,
                max_retries=claude.max_retries,
            ),
        )
        pool = self.settings.pool
        self.pool = CliPool(
            spec,
            size=pool.size,
            spares=pool.spares,
            spare_model=pool.spare_model,
            max_queue=pool.max_queue,
            queue_timeout_s=pool.queue_timeout_s,
            retry_after_s=pool.retry_after_s,
            config_dir=config_dir(spec.env),
            workroot=Path(claude.workdir) if claude.workdir else None,
            warm_max=pool.warm_max,
            warm_idle_s=pool.warm_idle_s,
        )
        await self.pool.start()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def health(self) -> dict[str, Any]:
        cli = {"found": self.cli is not None}
        if self.cli is not None:
            cli.update(path=self.cli.path, version=self.cli.version)
        if self.cli_error:
            cli["error"] = self.cli_error
        return {"cli": cli, "pool": self.pool.stats() if self.pool else None}

    async def stream(self, job: CompletionJob) -> AsyncIterator[BackendEvent]:
        if self.pool is None:
            raise CliUnavailable(self.cli_error or "the Claude CLI is not available")
        pool = self.pool
        key = conversation_key(job, job.history)
        async with pool.lease(model=job.model, history=job.history, priority=job.priority, warm_key=key) as proc:
            await _prepare(proc, job)
            await proc.send({"type": "user", "message": {"role": "user", "content": _stdin_content(job.prompt)}})
            reply: list[str] = []
            async for event in _translate(proc, structured=job.json_schema is not None):
                if isinstance(event, TextDelta):
                    reply.append(event.text)
                elif isinstance(event, Completed) and event.finish_reason == "stop" and reply:
                    # The process now holds exactly the conversation the caller will resend
                    # next time, with this reply: keep it for that request.
                    turns = [*job.history, Turn("user", job.prompt), Turn("assistant", [TextBlock("".join(reply))])]
                    next_key = conversation_key(job, turns)
                    if next_key is not None:
                        pool.park(proc, next_key)
                yield event


def conversation_key(job: CompletionJob, turns: list[Turn]) -> str | None:
    """Identifies a conversation a warm process can continue: its project, model, system prompt
    and turns. None for jobs that are not kept warm (no project, or a response schema)."""
    if job.owner is None or job.json_schema is not None:
        return None
    return hashlib.sha256(_key_encoder.encode([job.owner, job.model, job.system, turns])).hexdigest()


_key_encoder = msgspec.json.Encoder()


async def _prepare(proc: CliProcess, job: CompletionJob) -> None:
    """System prompt, model and output limit go over stdin as control requests, never argv.
    A warm process was initialized by the turn before, with the same system prompt and model."""
    requests: list[dict[str, Any]] = []
    if not proc.initialized:
        initialize: dict[str, Any] = {"subtype": "initialize", "systemPrompt": job.system}
        if job.json_schema is not None:
            initialize["jsonSchema"] = job.json_schema
        requests.append(initialize)
    if job.model != proc.model:
        requests.append({"subtype": "set_model", "model": job.model})
    if job.max_output_tokens is not None:
        env = {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(job.max_output_tokens)}
        requests.append({"subtype": "apply_flag_settings", "settings": {"env": env}})
    if requests:
        await proc.control(requests)
    proc.initialized = True
    proc.model = job.model


def _stdin_content(blocks: list[Block]) -> list[dict[str, Any]]:
    content = [msgspec.to_builtins(block) for block in blocks]
    # The CLI runs a message whose last text block starts with "/" as a slash command. A trailing
    # empty text block prevents that, and the CLI drops it before calling the upstream.
    texts = [block for block in blocks if isinstance(block, TextBlock)]
    if texts and texts[-1].text.startswith("/"):
        content.append({"type": "text", "text": ""})
    return content


async def _translate(proc: CliProcess, *, structured: bool) -> AsyncIterator[BackendEvent]:
    """CLI lines to backend events. With a schema, the answer is the validated JSON of the
    result line, so the model's own text (if any) is not passed on."""
    started = TokenUsage()
    model: str | None = None
    async for line in proc.lines():
        if isinstance(line, StreamEventLine):
            if line.parent_tool_use_id is not None:
                continue
            event = line.event
            if isinstance(event, ContentBlockDelta) and isinstance(event.delta, TextDeltaBody):
                if event.delta.text and not structured:
                    yield TextDelta(event.delta.text)
            elif isinstance(event, MessageStart):
                usage = event.message.usage
                model = event.message.model or model
                started = TokenUsage(
                    input_tokens=usage.input_tokens or 0,
                    cache_read_tokens=usage.cache_read_input_tokens or 0,
                    cache_creation_tokens=usage.cache_creation_input_tokens or 0,
                )
                yield Started(started)
            elif isinstance(event, MessageDelta) and event.delta.stop_reason == "max_tokens":
                # The CLI would send a second request asking the model to continue; OpenAI's
                # max_tokens means stop here, so the answer ends now with the upstream's counts.
                usage = msgspec.structs.replace(started, output_tokens=event.usage.output_tokens or 0)
                yield Completed(finish_reason="length", usage=usage, model=model)
                return
        elif isinstance(line, ResultLine):
            if line.is_error:
                raise _result_error(line)
            if structured:
                if line.structured_output is None:
                    raise StructuredOutputFailed(
                        "The model did not produce JSON matching the requested schema: "
                        + (line.result or "no answer")[:500]
                    )
                yield TextDelta(_json_text(line.structured_output))
            yield Completed(
                finish_reason="length" if line.stop_reason == "max_tokens" else "stop",
                usage=TokenUsage(
                    input_tokens=line.usage.input_tokens,
                    output_tokens=line.usage.output_tokens,
                    cache_read_tokens=line.usage.cache_read_input_tokens,
                    cache_creation_tokens=line.usage.cache_creation_input_tokens,
                ),
                cost_usd=line.total_cost_usd,
                model=next(iter(line.modelUsage), model),
            )
            return
        elif isinstance(line, SystemLine) and line.subtype == "api_retry":
            log.info("upstream retry %s/%s status=%s", line.attempt, line.max_retries, line.error_status)
        elif isinstance(line, AssistantLine) and line.error:
            log.info("cli reported assistant error %s", line.error)
    raise CliFailed(await proc.exit_message("the Claude CLI exited without a result"))


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _result_error(line: ResultLine) -> ProxyError:
    status = line.api_error_status
    text = (line.result or "; ".join(line.errors or []) or "unknown error").strip()
    if status == 429:
        return RateLimited(f"the Anthropic API is rate limiting requests: {text}", retry_after=5)
    if status in (529, 503):
        return UpstreamOverloaded(f"the Anthropic API is overloaded: {text}")
    if status == 400 or status == 413:
        return UpstreamRejected(f"the Anthropic API rejected the request: {text}")
    if status in (401, 403):
        return CliUnavailable(f"the Claude CLI is not logged in or its key was refused: {text}", code="cli_auth_failed")
    if status is not None:
        return UpstreamError(f"the Anthropic API failed with status {status}: {text}")
    if text.startswith("API Error"):  # a broken or cut stream: the CLI reports it without a status
        return UpstreamError(f"the Anthropic API's answer was broken: {text}")
    return CliFailed(f"the Claude CLI reported an error ({line.subtype}): {text}")
