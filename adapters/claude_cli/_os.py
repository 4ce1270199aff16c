"""Process plumbing of Linux: a CLI that dies with the server, and /proc memory figures."""

from __future__ import annotations

import ctypes
import shutil
import signal
import sys


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the server dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: EOF on stdin still ends the CLI soon after the server is gone


_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")
# util-linux's setpriv sets the same death signal and then execs the CLI. Without a preexec_fn
# Python can spawn with vfork: about 1 ms instead of 20 ms of forking the whole server, time the
# event loop is blocked for. The preexec_fn is the fallback where setpriv is missing.
_SETPRIV = shutil.which("setpriv") if _LINUX else None
DEATH_WRAPPER = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []
PREEXEC = _die_with_parent if _LINUX and not _SETPRIV else None


def status_mb(pid: int, field: str) -> float | None:
    """A memory figure of /proc/PID/status (`VmRSS`, `RssAnon`, ...) in MB; None where /proc
    cannot tell."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None
