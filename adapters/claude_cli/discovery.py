"""Finding the Claude Code CLI binary and its version."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from msgspec import Struct

from core.errors import CliUnavailable


class CliInfo(Struct):
    path: str
    version: str


def _npm_prefixes() -> list[Path]:
    prefixes = []
    for key in ("NPM_CONFIG_PREFIX", "npm_config_prefix"):
        if os.environ.get(key):
            prefixes.append(Path(os.environ[key]))
    npm = shutil.which("npm")
    if npm:
        try:
            out = subprocess.run([npm, "prefix", "-g"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                prefixes.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    prefixes += [Path("/usr/local"), Path("/usr"), Path.home() / ".npm-global"]
    return prefixes


def candidate_paths() -> list[Path]:
    """The usual install places, most specific first."""
    home = Path.home()
    found: list[Path] = []
    on_path = shutil.which("claude")
    if on_path:
        found.append(Path(on_path))
    for prefix in _npm_prefixes():
        # npm may skip the postinstall that links bin/claude; the platform binary runs directly.
        found.append(prefix / "bin" / "claude")
        found += [Path(p) for p in glob.glob(str(prefix / "lib/node_modules/@anthropic-ai/claude-code-*/claude"))]
    found += [home / ".claude" / "local" / "claude", home / ".local" / "bin" / "claude"]
    for pattern in (
        ".nvm/versions/node/*/bin/claude",
        ".volta/bin/claude",
        ".fnm/node-versions/*/installation/bin/claude",
        ".local/share/fnm/node-versions/*/installation/bin/claude",
        ".asdf/shims/claude",
        ".local/share/mise/installs/node/*/bin/claude",
        ".bun/bin/claude",
    ):
        found += sorted((Path(p) for p in glob.glob(str(home / pattern))), reverse=True)
    return found


def read_version(path: str, timeout: float = 20.0) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CliUnavailable(f"the Claude CLI at {path} could not run: {exc}") from exc
    if out.returncode != 0:
        raise CliUnavailable(f"the Claude CLI at {path} failed `--version`: {out.stderr.strip()[:200]}")
    return out.stdout.strip().split(" ")[0]


def find_cli(configured: str | None) -> CliInfo:
    """The configured binary (a path or a name on PATH), else the first usable install found."""
    if configured:
        resolved = shutil.which(configured) or (configured if Path(configured).is_file() else None)
        if resolved is None:
            raise CliUnavailable(f"claude.binary {configured!r} was not found")
        return CliInfo(path=str(resolved), version=read_version(str(resolved)))
    for candidate in candidate_paths():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            try:
                return CliInfo(path=str(candidate), version=read_version(str(candidate)))
            except CliUnavailable:
                continue  # a placeholder left by a skipped postinstall, try the next one
    raise CliUnavailable(
        "no Claude Code CLI found: install it (npm install -g @anthropic-ai/claude-code) or set claude.binary"
    )
