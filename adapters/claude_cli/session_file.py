"""Synthetic session files: earlier turns of a conversation, replayed by `--resume` as real turns.

The CLI reads `CLAUDE_CONFIG_DIR/projects/<cwd with every non-alphanumeric character as ->/<id>.jsonl`
when started with `--resume <id>`; each line is one turn chained to the previous by `parentUuid`.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from adapters.claude_cli.tool_bridge import upstream_name
from core.types import Block, ToolUseBlock, Turn

_encoder = msgspec.json.Encoder()


def config_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) if configured else Path(environ.get("HOME", str(Path.home()))) / ".claude"


def project_dir(config: Path, cwd: Path) -> Path:
    return config / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(cwd))


def _block(block: Block) -> dict[str, Any]:
    data = msgspec.to_builtins(block)
    if isinstance(block, ToolUseBlock):
        data["name"] = upstream_name(block.name)
    return data


def _message(turn: Turn) -> dict[str, Any]:
    content = [_block(block) for block in turn.content]
    if turn.role == "user":
        return {"role": "user", "content": content}
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": "<synthetic>",
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def write_session(config: Path, cwd: Path, history: list[Turn]) -> tuple[str, Path]:
    """Write the turns as a session the CLI can resume; returns (session id, file path)."""
    session_id = str(uuid.uuid4())
    folder = project_dir(config, cwd)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    parent = None
    lines = []
    for turn in history:
        line_id = str(uuid.uuid4())
        lines.append(
            _encoder.encode(
                {
                    "parentUuid": parent,
                    "isSidechain": False,
                    "userType": "external",
                    "cwd": str(cwd),
                    "sessionId": session_id,
                    "type": turn.role,
                    "message": _message(turn),
                    "uuid": line_id,
                    "timestamp": stamp,
                }
            )
        )
        parent = line_id
    path = folder / f"{session_id}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(b"\n".join(lines) + b"\n")
    return session_id, path


def remove_session(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the folder belongs to one throwaway cwd
