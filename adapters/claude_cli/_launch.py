"""Starting one CLI child: its throwaway working directory, session file and process group."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import NamedTuple

from adapters.claude_cli._os import DEATH_WRAPPER, PREEXEC
from adapters.claude_cli.command import LaunchSpec, ResumeTurn, TurnSetup, build_argv, resume_turn_env
from adapters.claude_cli.lines import READ_BUFFER
from adapters.claude_cli.session_file import remove_session, write_session
from core.errors import CliUnavailable
from core.types import Turn

log = logging.getLogger("claude_proxy.cli")


class Launched(NamedTuple):
    """A started CLI child and the files made for it, which its owner removes when it closes."""

    proc: asyncio.subprocess.Process
    workdir: Path
    session_file: Path | None
    env: dict[str, str]


async def launch(
    spec: LaunchSpec,
    *,
    model: str,
    workroot: Path,
    config_dir: Path,
    history: list[Turn] | None,
    resume_turn: TurnSetup | None,
) -> Launched:
    """Start the CLI in a new working directory under `workroot`, resuming `history` from a
    session file; with `resume_turn`, the last turn of `history` is answered at start-up, see
    `ResumeTurn`. Nothing is left behind when it fails or is cancelled."""
    workdir = workroot / f"w{uuid.uuid4().hex}"
    workdir.mkdir(mode=0o700, parents=True)
    session_id = session_file = None
    try:
        if history:
            session_id, session_file = write_session(config_dir, workdir, history)
        env = spec.env
        turn = None
        if resume_turn is not None:
            prompt_file = workdir / "system-prompt.txt"
            fd = os.open(prompt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(resume_turn.system)
            turn = ResumeTurn(system_prompt_file=str(prompt_file), setup=resume_turn)
            env = resume_turn_env(env, turn)
        argv = build_argv(spec, model=model, resume_session=session_id, resume_turn=turn)
        proc = await asyncio.create_subprocess_exec(
            *DEATH_WRAPPER,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
            limit=READ_BUFFER,
            start_new_session=True,  # its own process group, so one kill reaches its children
            preexec_fn=PREEXEC,
        )
    except BaseException as exc:
        # Also when cancelled (the caller went away, the server stops): nothing owns the
        # session file, which holds caller text, once this returns. asyncio kills a process
        # whose start was cancelled.
        shutil.rmtree(workdir, ignore_errors=True)
        if session_file is not None:
            remove_session(session_file)
        if isinstance(exc, OSError):
            raise CliUnavailable(f"could not start the Claude CLI: {exc}") from exc
        raise
    log.debug("cli started pid=%s model=%s resume=%s", proc.pid, model, bool(history))
    return Launched(proc, workdir, session_file, env)
