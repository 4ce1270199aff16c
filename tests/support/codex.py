"""The pinned Codex CLI (`@openai/codex`), installed from the npm registry into a cache kept
between runs, as `tests.support.cli` does for Claude Code."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from tests.support.cli import ensure_npm_binary

CODEX_VERSION = "0.169.0"
REPO = Path(__file__).resolve().parents[2]
# The npm package is a small launcher; the native binary comes in an optional dependency per
# platform (`@openai/codex-<os>-<arch>`), under vendor/<target triple>/bin.
_PLATFORMS = {
    ("Linux", "x86_64"): ("linux-x64", "x86_64-unknown-linux-musl"),
    ("Linux", "aarch64"): ("linux-arm64", "aarch64-unknown-linux-musl"),
    ("Darwin", "x86_64"): ("darwin-x64", "x86_64-apple-darwin"),
    ("Darwin", "arm64"): ("darwin-arm64", "aarch64-apple-darwin"),
}


def cache_dir() -> Path:
    configured = os.environ.get("CLAUDE_PROXY_CODEX_CACHE")
    return Path(configured) if configured else REPO / ".cache" / f"codex-{CODEX_VERSION}"


def binary_path(root: Path | None = None) -> Path:
    root = root or cache_dir()
    package, triple = _PLATFORMS[(platform.system(), platform.machine())]
    return root / "node_modules" / "@openai" / f"codex-{package}" / "vendor" / triple / "bin" / "codex"


def ensure_codex() -> Path:
    """Returns the pinned binary, installing it with npm when it is not cached yet."""
    return ensure_npm_binary(
        f"@openai/codex@{CODEX_VERSION}",
        cache_dir(),
        binary_path(),
        CODEX_VERSION,
        lambda printed: printed.split()[-1],  # "codex-cli 0.169.0"
    )


if __name__ == "__main__":
    print(ensure_codex())  # noqa: T201 - used by the Makefile to install the Codex CLI
