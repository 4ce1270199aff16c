"""What the pool needs of a CLI process, and the factory that starts one for an account.

The pool's policy is written against `PooledProcess` and `ProcessFactory`, so its tests run
on fakes; `spawner` is the real factory, starting `CliProcess`es with each account's launch spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

from adapters.claude_cli.command import LaunchSpec, TurnSetup
from adapters.claude_cli.process import CliProcess
from core.types import Turn


class PooledProcess(Protocol):
    """What the pool needs of a process: its policy reads these and calls these, nothing more."""

    @property
    def pid(self) -> int: ...
    @property
    def alive(self) -> bool: ...
    @property
    def parked_key(self) -> str | None: ...
    @property
    def turn_ended(self) -> bool: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def conversations(self) -> int: ...
    def private_mb(self) -> float | None: ...
    def rss_mb(self) -> float | None: ...
    def rewind_point(self, key: str) -> int | None: ...
    def tools_rank(self, tools: str | None) -> int | None: ...
    async def rewind(self, index: int = 0) -> None: ...
    def park(self, key: str, *, turn_ended: bool) -> bool: ...
    def unpark(self) -> None: ...
    def note_new_conversation(self) -> None: ...
    def kill(self) -> None: ...
    async def close(self) -> None: ...


P = TypeVar("P", bound=PooledProcess)
P_co = TypeVar("P_co", bound=PooledProcess, covariant=True)


class ProcessFactory(Protocol[P_co]):
    """Starts one CLI process; the pool's only way to make one (tests pass a fake)."""

    async def __call__(
        self,
        *,
        model: str,
        workroot: Path,
        history: list[Turn] | None,
        resume_turn: TurnSetup | None,
        account: str,
    ) -> P_co: ...


def spawner(launch: dict[str, tuple[LaunchSpec, Path]]) -> ProcessFactory[CliProcess]:
    """The real factory: `CliProcess.spawn` with the account's launch spec and config dir."""

    async def spawn(
        *,
        model: str,
        workroot: Path,
        history: list[Turn] | None,
        resume_turn: TurnSetup | None,
        account: str,
    ) -> CliProcess:
        spec, config_dir = launch[account]
        return await CliProcess.spawn(
            spec, model=model, workroot=workroot, config_dir=config_dir, history=history, resume_turn=resume_turn
        )

    return spawn
