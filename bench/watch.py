"""Watching a server's CLI processes from outside: how many are alive, and none left behind."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from tests.support.server import RunningServer, cmdline


def _dying(pid: int) -> bool:
    """Killed and not yet gone: a zombie, exiting, or a SIGKILL pending (the pool kills before
    it waits, and a process of this size takes a while to exit on a loaded machine)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        flags = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[6])
    except (OSError, ValueError, IndexError):
        return True
    if flags & 0x4:  # PF_EXITING
        return True
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    state = fields.get("State", "").strip()[:1]
    pending = int(fields.get("ShdPnd", "0").strip(), 16) | int(fields.get("SigPnd", "0").strip(), 16)
    return state in ("Z", "X") or bool(pending & (1 << 8))  # bit 8: signal 9


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Watcher:
    """Samples the server's CLI processes while the load runs: how many at most (those being
    killed apart), which pids."""

    def __init__(self, server: RunningServer, *, size: int) -> None:
        self.server = server
        self.size = size
        self.most = 0
        self.most_with_dying = 0
        self.helpers = 0  # most CLI processes at once that were a CLI's own children
        self.over: list[dict[str, Any]] = []  # the pool's counts whenever more than `size` were alive
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            pids = self.server.cli_pids()
            self.most_with_dying = max(self.most_with_dying, len(pids))
            # The pool's processes are the server's children; a CLI runs short-lived helpers
            # of its own binary (same name), which are its children and die with it.
            server = self.server.proc.pid if self.server.proc else None
            pooled = [pid for pid in pids if _parent(pid) == server]
            self.helpers = max(self.helpers, len(pids) - len(pooled))
            alive = [pid for pid in pooled if not _dying(pid)]
            self.most = max(self.most, len(alive))
            if len(alive) > self.size and len(self.over) < 5:
                self.over.append({"alive": len(alive), "pool": self.server.health()["pool"]})
            self.seen.update(pids)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def orphans(pids: list[int]) -> list[int]:
    """Of the CLI processes seen, those still alive (after the server stopped)."""
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}") and "claude" in " ".join(cmdline(pid)[:1])]
