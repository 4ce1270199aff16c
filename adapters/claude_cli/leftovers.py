"""What a pool run leaves on disk, marked with its owner, and the removal of dead runs' leftovers.

A run (one started pool: a server or a `claude-proxy worker`) writes three kinds of files:

- its workroot, `<claude.workdir or the temp dir>/claude-proxy-<run id>/`, holding each CLI
  process's throwaway working directory;
- session files for `--resume` (earlier turns of a conversation: caller text), under
  `<CLI config dir>/projects/<cwd with every non-alphanumeric character as ->/`, a folder per
  working directory, so its name ends in `-claude-proxy-<run id>-w<hex>`;
- through the CLI, a status file per process, `<CLI config dir>/sessions/<pid>.json`.

A process that is closed removes its own; a run killed (SIGKILL, OOM, power loss) cannot. Several
runs may share one machine, one workdir and one config dir, so a leftover is removed only when
its owner is known to be dead. Each run marks what it owns with an owner file, in its workroot
and in `<config dir>/claude-proxy-runs/<run id>.lock`: the owner's pid, process start time, boot
and host, and an exclusive `flock` held for the run's lifetime. The kernel drops the flock when the
process dies, however it dies, so a lock that can be taken means a dead owner; the recorded pid
and start time must say so too, which keeps a live run safe where flock does not work (some
network file systems). Whatever cannot be told (no owner file yet, another host, another pid
namespace) is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("claude_proxy.pool")

RUN_PREFIX = "claude-proxy-"
OWNER_FILE = "owner.lock"
RUNS_DIR = "claude-proxy-runs"
# A run id is 32 hex digits: alphanumeric, so the CLI's cwd mangling keeps it as it is and a
# session folder's name tells its run.
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_SESSION_FOLDER = re.compile(r"-claude-proxy-([0-9a-f]{32})-w[0-9a-f]{32}$")
# An owner file is written right after it is created and locked; one still empty after this long
# was left by a run that died in between.
_UNWRITTEN_GRACE_S = 60.0


@dataclass(frozen=True)
class Owner:
    """Identifies a process across pid reuse: its pid and start time within one boot of one host."""

    pid: int
    start: str | None
    boot: str | None
    pidns: str | None
    host: str

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), _start_time(os.getpid()), _boot_id(), _pid_namespace(), os.uname().nodename)

    @classmethod
    def parse(cls, data: Any) -> Owner | None:
        try:
            return cls(
                pid=int(data["pid"]),
                start=data.get("start"),
                boot=data.get("boot"),
                pidns=data.get("pidns"),
                host=str(data["host"]),
            )
        except (TypeError, KeyError, ValueError):
            return None

    def may_be_alive(self) -> bool:
        """False only when this owner is certainly gone; True when alive or when it cannot tell."""
        here = Owner.current()
        if self.host != here.host:
            return True  # another machine's pids mean nothing here
        if self.boot is not None and here.boot is not None and self.boot != here.boot:
            return False  # nothing of an earlier boot still runs
        if self.pidns != here.pidns:
            return True  # another container's pid: not visible from here
        if here.start is None:  # no /proc: the pid alone
            return _pid_exists(self.pid)
        return _start_time(self.pid) == self.start


class OwnerLock:
    """An owner file this process holds flocked until `release` (or its death)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def create(cls, path: Path) -> OwnerLock:
        # O_EXCL: a new file, never someone else's; locked before its content is written, so a
        # sweeper that reads an owner also sees its lock (or the owner is dead).
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            # Blocking: a sweeper may hold a shared lock on the new file for the moment it looks.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps(asdict(Owner.current())).encode())
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before the unlock, so no sweeper sees it free
        os.close(self._fd)
        self._fd = None


def owner_is_dead(path: Path) -> bool:
    """Whether the owner file at `path` belongs to a run that is certainly gone. A missing or
    unreadable file, a held lock or an owner that may be alive all answer False."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False  # held: its owner runs
        raw = os.read(fd, 4096)
        if not raw:
            return time.time() - os.fstat(fd).st_mtime > _UNWRITTEN_GRACE_S
        try:
            owner = Owner.parse(json.loads(raw))
        except ValueError:
            return False
        return owner is not None and not owner.may_be_alive()
    finally:
        os.close(fd)  # also drops the shared lock taken to look


@dataclass
class Swept:
    workroots: int = 0
    session_folders: int = 0
    status_files: int = 0


class Run:
    """The files of one pool run: its workroot and its owner files. `begin` first removes what
    dead runs left; `end` removes everything of this run."""

    def __init__(self, run_id: str, workroot: Path, config_dirs: list[Path], locks: list[OwnerLock]) -> None:
        self.id = run_id
        self.workroot = workroot
        self.config_dirs = config_dirs
        self._locks = locks

    @classmethod
    def begin(cls, root: Path, config_dirs: Sequence[Path]) -> Run:
        """`config_dirs`: every CLI config dir the run's processes use (one per account at most)."""
        config_dirs = list(dict.fromkeys(config_dirs))
        root.mkdir(parents=True, exist_ok=True)
        swept = sweep(root, config_dirs)
        if swept != Swept():
            log.info(
                "removed what dead runs left: %d work directories, %d session folders, %d CLI status files",
                swept.workroots,
                swept.session_folders,
                swept.status_files,
            )
        run_id = uuid.uuid4().hex
        locks: list[OwnerLock] = []
        try:
            for config_dir in config_dirs:
                # Locked before any session file of this run can exist.
                runs = config_dir / RUNS_DIR
                runs.mkdir(mode=0o700, parents=True, exist_ok=True)
                locks.append(OwnerLock.create(runs / f"{run_id}.lock"))
            workroot = root / f"{RUN_PREFIX}{run_id}"
            workroot.mkdir(mode=0o700)
            locks.append(OwnerLock.create(workroot / OWNER_FILE))
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        return cls(run_id, workroot, config_dirs, locks)

    def end(self) -> None:
        """After every process of the run was closed: remove what is left of it, then its locks."""
        for config_dir in self.config_dirs:
            _remove_session_folders(config_dir, lambda run_id: run_id == self.id)
            remove_stale_status_files(config_dir)
        shutil.rmtree(self.workroot, ignore_errors=True)
        for lock in reversed(self._locks):
            lock.release()
        self._locks = []


def sweep(root: Path, config_dirs: Sequence[Path]) -> Swept:
    """Remove what dead runs left under `root` and in each of `config_dirs`."""
    swept = Swept(workroots=remove_dead_workroots(root))
    for config_dir in config_dirs:
        swept.session_folders += remove_dead_session_folders(config_dir)
        swept.status_files += remove_stale_status_files(config_dir)
    return swept


def remove_dead_workroots(root: Path) -> int:
    """`claude-proxy-*` directories of this user whose owner file says their run is dead. Those
    without one (made by an older version, or being made right now) are left alone."""
    removed = 0
    for entry in _entries(root):
        if not entry.name.startswith(RUN_PREFIX) or not _own_directory(entry):
            continue
        if owner_is_dead(entry / OWNER_FILE):
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.exists()
    return removed


def remove_dead_session_folders(config_dir: Path) -> int:
    """Session folders of runs whose lock in `claude-proxy-runs/` is dead or gone, then the dead
    locks. A run creates its lock before any session file and removes it after them, so a folder
    whose lock is gone is an orphan too (of a run whose clean-up was cut short)."""
    runs = config_dir / RUNS_DIR
    dead = {entry.stem for entry in _entries(runs) if _is_run_lock(entry) and owner_is_dead(entry)}

    def orphaned(run_id: str) -> bool:
        # Looked at now, not from an earlier listing: a run started since then has its lock.
        return run_id in dead or not (runs / f"{run_id}.lock").exists()

    removed = _remove_session_folders(config_dir, orphaned)
    for run_id in dead:
        (runs / f"{run_id}.lock").unlink(missing_ok=True)
    return removed


def _is_run_lock(entry: Path) -> bool:
    return entry.suffix == ".lock" and _RUN_ID.fullmatch(entry.stem) is not None


def _remove_session_folders(config_dir: Path, select: Callable[[str], bool]) -> int:
    """Session folders whose run id `select` picks."""
    removed = 0
    for entry in _entries(config_dir / "projects"):
        match = _SESSION_FOLDER.search(entry.name)
        if match is not None and select(match.group(1)) and _own_directory(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.exists()
    return removed


def remove_stale_status_files(config_dir: Path) -> int:
    """The CLI's `sessions/<pid>.json` of processes that are not running any more (a killed CLI
    cannot remove its own). A file whose process may be alive is kept."""
    removed = 0
    for entry in _entries(config_dir / "sessions"):
        if entry.suffix != ".json" or not entry.stem.isdigit():
            continue
        try:
            data = json.loads(entry.read_bytes())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        if not _cli_may_be_alive(int(entry.stem), data):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def _cli_may_be_alive(pid: int, status: dict[str, Any]) -> bool:
    domain = status.get("pidDomain")
    if isinstance(domain, str) and ":pid:" in domain:
        # "linux:<machine id>:pid:[<namespace>]": a pid of another machine or container is not ours to check.
        machine = domain.split(":pid:")[0].removeprefix("linux:")
        if machine != _machine_id() or "pid:" + domain.split(":pid:")[1] != _pid_namespace():
            return True
    if _boot_id() is None:  # no /proc
        return _pid_exists(pid)
    start = _start_time(pid)
    if start is None:
        return False
    recorded = status.get("procStart")
    if recorded is not None:
        return str(recorded) == start  # the same process, not a reused pid
    return any("claude" in part for part in _cmdline(pid)[:2])


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _own_directory(path: Path) -> bool:
    """A real directory (not a symlink someone planted in a shared temp dir) of this user."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (info.st_mode & 0o170000) == 0o040000 and info.st_uid == os.getuid()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None for
    no such process, a zombie, or no /proc."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _boot_id() -> str | None:
    boot = _read("/proc/sys/kernel/random/boot_id")
    return boot.strip() if boot else None


def _machine_id() -> str | None:
    machine = _read("/etc/machine-id")
    return machine.strip() if machine else None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")]


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
