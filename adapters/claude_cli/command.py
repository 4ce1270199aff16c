"""Command lines and environments for CLI processes. Nothing a caller wrote goes into argv."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from msgspec import Struct

from adapters.claude_cli.tool_bridge import MCP_CONFIG
from core.types import ReasoningEffort

# Session ids and models reach argv; both are produced by the proxy, and checked once more here.
_SAFE_ARG = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,100}")

OUTPUT_LIMIT_ENV = "CLAUDE_CODE_MAX_OUTPUT_TOKENS"  # the upstream request's max_tokens
EFFORT_ENV = "CLAUDE_CODE_EFFORT_LEVEL"  # output_config.effort of adaptive-thinking models
NO_THINKING_ENV = "CLAUDE_CODE_DISABLE_THINKING"  # "1": no `thinking` in the upstream request
BUDGET_ENV = "MAX_THINKING_TOKENS"  # budget_tokens of budget-thinking models, read at start-up
THINKING_ENV = (EFFORT_ENV, NO_THINKING_ENV)

# A caller's reasoning effort as (CLI effort level, thinking budget for the models that take
# one). Measured on CLI 2.1.328: the current models get `thinking: {"type": "adaptive"}` and
# `output_config.effort`; older ones (claude-sonnet-4-5 and the like) `thinking: {"type":
# "enabled", "budget_tokens"}`, by default max_tokens - 1 (None here keeps that default).
_EFFORTS: dict[str, tuple[str, int | None]] = {
    "none": ("low", 0),
    "minimal": ("low", 1024),
    "low": ("low", 4096),
    "medium": ("medium", 16384),
    "high": ("high", None),
    "xhigh": ("xhigh", None),
}


class ThinkingMode(NamedTuple):
    """A job's thinking: its effort (None: the process's start-up default), and False in
    `thinking` to turn thinking off whatever the effort."""

    effort: ReasoningEffort | None = None
    thinking: bool = True


DEFAULT_THINKING = ThinkingMode()


class ThinkingSetup(NamedTuple):
    """What a reasoning effort sets in the CLI: variables for `apply_flag_settings` (None unsets
    one) and the budget for `set_max_thinking_tokens` (None: the session's default)."""

    env: dict[str, str | None]
    budget: int | None


def thinking_setup(mode: ThinkingMode, base: Mapping[str, str | None]) -> ThinkingSetup:
    """The CLI settings for `mode`; an effort of None restores `base`, the process's start-up
    values."""
    if mode.effort is None:
        setup = ThinkingSetup({key: base.get(key) for key in THINKING_ENV}, None)
    else:
        level, budget = _EFFORTS[mode.effort]
        setup = ThinkingSetup({EFFORT_ENV: level, NO_THINKING_ENV: "1" if budget == 0 else None}, budget)
    if not mode.thinking:
        setup.env[NO_THINKING_ENV] = "1"
    return setup


FORCED_ENV = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


class LaunchSpec(Struct, kw_only=True):
    """Settings shared by every process the pool starts."""

    binary: str
    bare: bool
    max_retries: int
    env: dict[str, str]


def safe_arg(value: str) -> str:
    if not _SAFE_ARG.fullmatch(value):
        raise ValueError(f"refusing to put {value!r} on a command line")
    return value


class TurnSetup(Struct, kw_only=True, frozen=True):
    """How a resumed tool turn runs: its system prompt, output limit and thinking."""

    system: str
    max_output_tokens: int | None = None
    mode: ThinkingMode = DEFAULT_THINKING


class ResumeTurn(Struct, kw_only=True):
    """A process that resumes a conversation whose last turn (tool results) it must answer at
    once, before any stdin set-up: its system prompt (in a file), tools and limits come with it."""

    system_prompt_file: str
    setup: TurnSetup


def build_argv(
    spec: LaunchSpec, *, model: str, resume_session: str | None = None, resume_turn: ResumeTurn | None = None
) -> list[str]:
    """A print-mode stream-json process with every host-facing feature off. Tool permission
    prompts come to the proxy over stdio (`--permission-prompt-tool stdio`)."""
    argv = [
        spec.binary,
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--model",
        safe_arg(model),
        "--tools",
        "",
        "--strict-mcp-config",
        "--setting-sources",
        "",
        "--no-session-persistence",
        "--disable-slash-commands",
        "--system-prompt-snapshot",
        "off",
        "--permission-mode",
        "default",
        "--permission-prompt-tool",
        "stdio",
    ]
    if spec.bare:
        argv.append("--bare")
    if resume_session is not None:
        argv += ["--resume", safe_arg(resume_session)]
    if resume_turn is not None:
        argv += ["--mcp-config", MCP_CONFIG, "--system-prompt-file", resume_turn.system_prompt_file]
    return argv


def resume_turn_env(base: Mapping[str, str], resume_turn: ResumeTurn) -> dict[str, str]:
    env = dict(base)
    # Re-run the interrupted last turn at start-up: the model answers the tool results in the
    # session file. The CLI adds its "Continue from where you left off." to that user turn.
    env["CLAUDE_CODE_RESUME_INTERRUPTED_TURN"] = "1"
    turn = resume_turn.setup
    if turn.max_output_tokens is not None:
        env[OUTPUT_LIMIT_ENV] = str(turn.max_output_tokens)
    setup = thinking_setup(turn.mode, env)
    for key, value in setup.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if setup.budget is not None:
        env[BUDGET_ENV] = str(setup.budget)
    return env


def build_env(
    environ: Mapping[str, str],
    *,
    passthrough: list[str],
    extra: Mapping[str, str],
    max_retries: int,
) -> dict[str, str]:
    """Only named variables cross from the server to the CLI, plus the forced quiet settings."""
    env = {key: environ[key] for key in passthrough if key in environ}
    env.update(extra)
    env.update(FORCED_ENV)
    env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env


def decide_bare(setting: str | bool, environ: Mapping[str, str]) -> bool:
    """`auto`: bare when an API key is there to use and no OAuth login would be lost."""
    if isinstance(setting, bool):
        return setting
    has_key = bool(environ.get("ANTHROPIC_API_KEY"))
    has_oauth = bool(environ.get("CLAUDE_CODE_OAUTH_TOKEN"))
    return has_key and not has_oauth
