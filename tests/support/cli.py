"""The pinned Claude Code CLI, installed from the npm registry into a cache kept between runs."""

from __future__ import annotations

import os
import subprocess
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
    binary = binary_path()
    if binary.is_file() and _version(binary) == CLI_VERSION:
        return binary
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(root),
            f"@anthropic-ai/claude-code@{CLI_VERSION}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    if _version(binary) != CLI_VERSION:
        raise RuntimeError(f"installed Claude CLI at {binary} does not report version {CLI_VERSION}")
    return binary


def _version(binary: Path) -> str | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split(" ")[0].strip() if out.returncode == 0 else None


if __name__ == "__main__":
    print(ensure_cli())  # noqa: T201 - used by the Makefile to install the CLI
