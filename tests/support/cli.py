"""The pinned Claude Code CLI, installed from the npm registry into a cache kept between runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

CLI_VERSION = "2.1.328"
REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    configured = os.environ.get("CLAUDE_PROXY_CLI_CACHE")
    return Path(configured) if configured else REPO / ".cache" / f"claude-cli-{CLI_VERSION}"


def binary_path(root: Path | None = None) -> Path:
    # npm skips the postinstall that would link bin/claude; the platform binary runs on its own.
    root = root or cache_dir()
    return root / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"


def ensure_cli() -> Path:
    """Returns the pinned binary, installing it with npm when it is not cached yet."""
    return ensure_npm_binary(
        f"@anthropic-ai/claude-code@{CLI_VERSION}",
        cache_dir(),
        binary_path(),
        CLI_VERSION,
        lambda printed: printed.split(" ")[0],  # "2.1.328 (Claude Code)"
    )


def ensure_npm_binary(spec: str, root: Path, binary: Path, version: str, parse: Callable[[str], str]) -> Path:
    """`binary` as npm package `spec` installs it under `root`, once it reports `version`
    (`parse` picks the version out of what `--version` prints); installs when missing."""
    if binary.is_file() and _version(binary, parse) == version:
        return binary
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root), spec],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    if _version(binary, parse) != version:
        raise RuntimeError(f"{binary}, installed from {spec}, does not report version {version}")
    return binary


def _version(binary: Path, parse: Callable[[str], str]) -> str | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse(out.stdout).strip() if out.returncode == 0 and out.stdout.strip() else None


if __name__ == "__main__":
    print(ensure_cli())  # noqa: T201 - used by the Makefile to install the CLI
