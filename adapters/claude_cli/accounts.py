"""How each Claude account's processes are started: its environment, credentials included.

Without `accounts` in the config there is one account, `default`, started exactly as before
from the server's environment. A configured account gets the server's passthrough variables
without their credentials, then its own `env`, and `CLAUDE_CONFIG_DIR` set to its `config_dir`:
one account's processes never see another's credentials. Credentials go only into the child's
environment, never its argv, and are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adapters.claude_cli.command import LaunchSpec, build_env, decide_bare
from adapters.claude_cli.plan import DEFAULT_ACCOUNT
from adapters.claude_cli.session_file import config_dir
from adapters.claude_cli.settings import AccountSettings, ClaudeSettings

# What a configured account brings itself rather than inherits from the server.
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def account_names(accounts: list[AccountSettings]) -> list[str]:
    """The accounts requests may run on, in the configured order."""
    return [account.name for account in accounts] or [DEFAULT_ACCOUNT]


def launch_specs(
    binary: str, claude: ClaudeSettings, accounts: list[AccountSettings], environ: Mapping[str, str]
) -> dict[str, tuple[LaunchSpec, Path]]:
    """Per account: the launch spec of its processes and the CLI config dir they use."""
    if not accounts:
        env = build_env(environ, passthrough=claude.env_passthrough, extra=claude.env, max_retries=claude.max_retries)
        spec = LaunchSpec(
            binary=binary, bare=decide_bare(claude.bare, environ), max_retries=claude.max_retries, env=env
        )
        return {DEFAULT_ACCOUNT: (spec, config_dir(env))}
    server = {key: value for key, value in environ.items() if key not in CREDENTIAL_ENV}
    out: dict[str, tuple[LaunchSpec, Path]] = {}
    for account in accounts:
        extra = {**claude.env, **account.env}
        if account.config_dir:
            extra["CLAUDE_CONFIG_DIR"] = str(Path(account.config_dir).expanduser())
        env = build_env(server, passthrough=claude.env_passthrough, extra=extra, max_retries=claude.max_retries)
        spec = LaunchSpec(binary=binary, bare=decide_bare(claude.bare, env), max_retries=claude.max_retries, env=env)
        out[account.name] = (spec, config_dir(env))
    return out
