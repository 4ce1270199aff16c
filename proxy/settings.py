"""Settings: built once from the config file, the environment and command-line overrides.

Nothing reads configuration at import time; `load_settings` is the one place that does, and the
result is passed explicitly to `create_app` and to the CLI commands.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from adapters.claude_cli.settings import AccountSettings, ClaudeSettings, PlanSettings, PoolSettings
from budgets.pricing import DEFAULT_PRICES
from budgets.settings import BudgetSettings
from core.redis_conn import RedisSettings

ENV_PREFIX = "CLAUDE_PROXY_"

# OpenAI model names callers already use, mapped onto Claude tiers. `haiku`, `sonnet`, `opus` and
# full `claude-*` ids are always accepted as well (see adapters.models).
DEFAULT_MODEL_ALIASES: dict[str, str] = {
    "gpt-4o-mini": "haiku",
    "gpt-4.1-mini": "haiku",
    "gpt-4.1-nano": "haiku",
    "gpt-3.5-turbo": "haiku",
    "gpt-4o": "sonnet",
    "gpt-4.1": "sonnet",
    "gpt-4-turbo": "sonnet",
    "gpt-4": "sonnet",
    "o1": "opus",
    "o3": "opus",
    "o4-mini": "opus",
    "gpt-5": "opus",
}


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """HTTP listener and request limits."""

    host: str = "127.0.0.1"
    port: int = 8006
    max_body_bytes: int = 20 * 1024 * 1024
    request_timeout_s: float = 300.0
    shutdown_grace_s: float = 10.0
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    # The listener's own limits (proxy/listener.py); see docs/configuration.md#server.
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    # Addresses or networks of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are
    # believed; from any other peer those headers are ignored. Empty: believe no one.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)


class StorageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where the SQLite database and stored files live."""

    path: str = "./data"


class AuthSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Administrative credentials."""

    admin_key: str | None = None
    max_failures_per_minute: int = 30


class RouteRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One rule of the `auto` model: every condition given must hold; the first matching rule wins."""

    model: str
    reason: str = ""
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    min_turns: int | None = None
    max_turns: int | None = None
    tools: bool | None = None
    schema: bool | None = None
    code: bool | None = None
    math: bool | None = None
    reasoning: bool | None = None


DEFAULT_ROUTE_RULES: tuple[RouteRule, ...] = (
    RouteRule(model="opus", reason="math or a proof", math=True),
    RouteRule(model="sonnet", reason="code", code=True),
    RouteRule(model="sonnet", reason="tools", tools=True),
    RouteRule(model="sonnet", reason="a response schema", schema=True),
    RouteRule(model="sonnet", reason="analysis, planning or design", reasoning=True),
    RouteRule(model="sonnet", reason="a long conversation", min_turns=4),
    RouteRule(model="haiku", reason="a short prompt", max_prompt_tokens=600),
)


class RouterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The `auto` model: picks haiku, sonnet or opus per request from cheap signals."""

    auto_model: str = "auto"
    default: str = "sonnet"
    rules: list[RouteRule] = msgspec.field(default_factory=lambda: list(DEFAULT_ROUTE_RULES))


class WorkerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """CLI workers on other hosts, fed through Redis Streams (`claude-proxy worker`)."""

    overflow: bool = False
    claim_idle_ms: int = 30_000


class CacheSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The opt-in response cache (in Redis when `redis.url` is set, else in process memory)."""

    enabled: bool = False
    ttl_s: int = 3600
    max_entries: int = 10_000


class ImageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Image inputs: `data:` URLs always; `http(s)` URLs only when fetching is turned on."""

    fetch: bool = False
    max_bytes: int = 5 * 1024 * 1024
    timeout_s: float = 10.0


class FilesSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Uploaded files (`/v1/files`)."""

    max_bytes: int = 100 * 1024 * 1024


class BatchSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Batches (`/v1/batches`): how much of the pool they may use and how they are checked."""

    concurrency: int = 2
    max_lines: int = 50_000
    completion_windows: list[str] = msgspec.field(default_factory=lambda: ["24h"])
    poll_s: float = 1.0
    max_attempts: int = 5
    retry_backoff_s: float = 2.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Everything the server needs, with defaults that run on a fresh machine."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    claude: ClaudeSettings = msgspec.field(default_factory=ClaudeSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    pool: PoolSettings = msgspec.field(default_factory=PoolSettings)
    budgets: BudgetSettings = msgspec.field(default_factory=BudgetSettings)
    router: RouterSettings = msgspec.field(default_factory=RouterSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    workers: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    images: ImageSettings = msgspec.field(default_factory=ImageSettings)
    files: FilesSettings = msgspec.field(default_factory=FilesSettings)
    batches: BatchSettings = msgspec.field(default_factory=BatchSettings)
    models: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_MODEL_ALIASES))
    # Empty: one account, "default", from the server's own environment.
    accounts: list[AccountSettings] = msgspec.field(default_factory=list)
    plan: PlanSettings = msgspec.field(default_factory=PlanSettings)


class SettingsError(ValueError):
    """The configuration file or environment holds a value the server cannot use."""


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from a YAML file, then `CLAUDE_PROXY_SECTION__KEY` variables, then overrides.

    `overrides` uses dotted keys (`{"server.port": 9000}`), as the command line does. A missing
    file is fine when it is the default path; a named file that does not exist is an error.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if file.exists():
            loaded = yaml.safe_load(file.read_text()) or {}
            if not isinstance(loaded, dict):
                raise SettingsError(f"{file}: the top level must be a mapping")
            data = loaded
        elif str(path) != "config.yaml":
            raise SettingsError(f"config file not found: {file}")
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(data, dotted, yaml.safe_load(raw) if raw != "" else None)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    # Aliases from the file extend the defaults; an alias set to null removes a default.
    models = dict(DEFAULT_MODEL_ALIASES)
    configured = data.get("models") or {}
    if not isinstance(configured, dict):
        raise SettingsError("models must be a mapping of alias to Claude model")
    for alias, target in configured.items():
        if target is None:
            models.pop(alias, None)
        else:
            models[str(alias)] = str(target)
    data["models"] = models
    # Prices given in the file replace the defaults model by model.
    budgets = data.get("budgets")
    if isinstance(budgets, dict) and isinstance(budgets.get("prices"), dict):
        budgets["prices"] = {**msgspec.to_builtins(DEFAULT_PRICES), **budgets["prices"]}
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from exc
    _check(settings)
    return settings


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _check(settings: Settings) -> None:
    _check_accounts(settings.accounts)
    if settings.pool.size < 0:
        raise SettingsError("pool.size must not be negative")
    if settings.pool.size == 0 and not settings.redis.url:
        raise SettingsError("pool.size 0 hands every request to workers, which needs redis.url")
    if settings.workers.overflow and not settings.redis.url:
        raise SettingsError("workers.overflow needs redis.url")
    pool = settings.pool
    if min(pool.spares, pool.max_queue, pool.reuse_max, pool.max_process_mb) < 0:
        raise SettingsError("pool.spares, pool.max_queue, pool.reuse_max and pool.max_process_mb must not be negative")
    if not 0 < settings.server.port < 65536:
        raise SettingsError("server.port must be between 1 and 65535")
    for tier in ("haiku", "sonnet", "opus"):
        if tier not in settings.budgets.prices:
            raise SettingsError(f"budgets.prices must price {tier}")
    if settings.batches.concurrency < 1:
        raise SettingsError("batches.concurrency must be at least 1")
    for window in settings.batches.completion_windows:
        if parse_window(window) is None:
            raise SettingsError(f"batches.completion_windows: {window!r} is not like 24h, 30m or 90s")
    if settings.budgets.default_max_tokens < 1:
        raise SettingsError("budgets.default_max_tokens must be at least 1")
    if settings.plan.batch_max_utilization < 0:
        raise SettingsError("plan.batch_max_utilization must not be negative")
    budgets = settings.budgets
    if min(budgets.overhead_tokens, budgets.overhead_samples, budgets.overhead_margin) < 0:
        raise SettingsError("budgets.overhead_tokens, overhead_samples and overhead_margin must not be negative")
    server = settings.server
    if server.max_body_bytes < 1024:
        raise SettingsError("server.max_body_bytes must be at least 1024")
    if server.max_header_bytes < 1024 or server.max_headers < 1 or server.max_connections < 1:
        raise SettingsError(
            "server.max_header_bytes must be at least 1024, server.max_headers and server.max_connections at least 1"
        )
    if server.header_timeout_s <= 0 or server.keep_alive_s <= 0:
        raise SettingsError("server.header_timeout_s and server.keep_alive_s must be above 0")
    for proxy in server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(
                f"server.trusted_proxies: {proxy!r} is not an IP address or network (such as 10.0.0.0/8)"
            ) from None


def _check_accounts(accounts: list[AccountSettings]) -> None:
    names = [account.name for account in accounts]
    for account in accounts:
        # Names become metrics labels and log fields: keep them plain.
        if not _ACCOUNT_NAME.fullmatch(account.name):
            raise SettingsError(f"accounts: {account.name!r} is not a name of letters, digits, '.', '_' or '-'")
        if not account.env and not account.config_dir:
            raise SettingsError(f"accounts: {account.name} needs env (its credentials) or config_dir")
    if len(set(names)) != len(names):
        raise SettingsError("accounts: every account needs its own name")


_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_window(window: str) -> int | None:
    """Seconds in a completion window such as `24h`, `30m` or `90s`; None when malformed."""
    units = {"s": 1, "m": 60, "h": 3600}
    if len(window) < 2 or window[-1] not in units or not window[:-1].isdigit():
        return None
    seconds = int(window[:-1]) * units[window[-1]]
    return seconds if seconds > 0 else None
