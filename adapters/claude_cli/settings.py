"""The Claude CLI backend's own settings: the `claude` and `pool` sections of the config.

`proxy.settings` builds them with the rest of the configuration; the backend gets only these.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# Server environment variables a CLI process may see; everything else stays with the server.
DEFAULT_ENV_PASSTHROUGH = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
)


class ClaudeSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How the Claude Code CLI is found and run."""

    binary: str | None = None
    # "auto": --bare when an ANTHROPIC_API_KEY is present and no OAuth token is (bare mode ignores
    # OAuth logins, and skips CLAUDE.md discovery and the per-machine environment block).
    bare: Literal["auto", True, False] = "auto"
    max_retries: int = 0
    workdir: str | None = None
    env: dict[str, str] = {}
    env_passthrough: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ENV_PASSTHROUGH))


class PoolSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The pool of Claude CLI processes."""

    size: int = 4
    spares: int = 1
    spare_model: str = "sonnet"
    spare_setups: int = 1
    max_queue: int = 32
    queue_timeout_s: float = 30.0
    retry_after_s: int = 2
    warm_max: int = 4
    warm_idle_s: float = 300.0
    reuse_max: int = 100
    max_process_mb: int = 200
    max_rss_mb: int = 0


class AccountSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One Claude account the pool runs processes for: its credentials come from `env`
    (`CLAUDE_CODE_OAUTH_TOKEN`, `ANTHROPIC_API_KEY`...) or a logged-in `config_dir`."""

    name: str
    env: dict[str, str] = {}
    config_dir: str | None = None


class PlanSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How the Claude plan's usage windows steer requests between accounts."""

    # False: an account whose plan reports paid extra usage in use leaves rotation until the
    # window that ran out resets.
    allow_overage: bool = False
    # Batch lines and background responses wait while every account's windows are above this
    # fraction, so that people keep what is left of the plan.
    batch_max_utilization: float = 0.8
