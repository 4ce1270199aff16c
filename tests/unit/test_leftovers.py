"""Owner files and the removal of what dead pool runs left: only what a dead owner held goes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from adapters.claude_cli import leftovers
from adapters.claude_cli.leftovers import (
    OWNER_FILE,
    RUNS_DIR,
    Owner,
    OwnerLock,
    Run,
    owner_is_dead,
    remove_stale_status_files,
    sweep,
)
from adapters.claude_cli.session_file import project_dir

REPO = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")


def _write_owner(path: Path, owner: Owner) -> Path:
    path.write_text(json.dumps(asdict(owner)))
    return path


def _dead_run_lock(path: Path) -> None:
    """An owner file created and locked by a process that is then SIGKILLed."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from adapters.claude_cli.leftovers import OwnerLock; "
            "OwnerLock.create(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)",
            str(path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    with child:  # closes its pipe too
        assert child.stdout is not None and child.stdout.readline() == b"locked\n"
        child.kill()
        child.wait(10)


def test_a_held_lock_is_alive_and_released_is_gone(tmp_path):
    lock = OwnerLock.create(tmp_path / "run.lock")
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    assert not owner_is_dead(tmp_path / "run.lock")  # flocked by another open file: its owner runs
    with pytest.raises(FileExistsError):
        OwnerLock.create(tmp_path / "run.lock")  # never someone else's file
    lock.release()
    assert not (tmp_path / "run.lock").exists()
    assert not owner_is_dead(tmp_path / "run.lock")  # nothing to judge


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_the_lock_of_a_killed_process_is_dead(tmp_path):
    _dead_run_lock(tmp_path / "run.lock")
    assert owner_is_dead(tmp_path / "run.lock")


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_free_lock_is_dead_only_when_its_recorded_owner_is_certainly_gone(tmp_path):
    here = Owner.current()
    path = tmp_path / "run.lock"
    # Not flocked (a file system without flock) but its owner, this process, runs: kept.
    assert not owner_is_dead(_write_owner(path, here))
    # The same pid started at another time: a reused pid, the owner is gone.
    assert owner_is_dead(_write_owner(path, replace(here, start="1")))
    # From an earlier boot: gone.
    assert owner_is_dead(_write_owner(path, replace(here, boot="0" * 32)))
    # Another machine or another pid namespace cannot be checked from here: kept.
    assert not owner_is_dead(_write_owner(path, replace(here, host="elsewhere", start="1")))
    assert not owner_is_dead(_write_owner(path, replace(here, pidns="pid:[1]", start="1")))
    # Unreadable content: kept.
    path.write_text("{not json")
    assert not owner_is_dead(path)


def test_an_unwritten_lock_is_dead_only_after_a_grace_period(tmp_path):
    path = tmp_path / "run.lock"
    path.touch()
    assert not owner_is_dead(path)  # a run creating it right now
    old = time.time() - 120
    os.utime(path, (old, old))
    assert owner_is_dead(path)


def _session_folder(config: Path, workroot: Path) -> Path:
    folder = project_dir(config, workroot / f"w{'ab' * 16}")
    folder.mkdir(parents=True)
    (folder / "0000.jsonl").write_text('{"secret": "caller text"}\n')
    return folder


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_begin_removes_only_what_dead_runs_left(tmp_path):
    root, config = tmp_path / "work", tmp_path / "config"
    live = Run.begin(root, [config])
    live_folder = _session_folder(config, live.workroot)

    dead_id = "d" * 32
    dead_root = root / f"claude-proxy-{dead_id}"
    dead_root.mkdir()
    (dead_root / f"w{'c' * 32}").mkdir()
    _dead_run_lock(dead_root / OWNER_FILE)
    _dead_run_lock(config / RUNS_DIR / f"{dead_id}.lock")
    dead_folder = _session_folder(config, dead_root)
    # A run whose lock is gone (its clean-up was cut short): its session folder is an orphan.
    orphan_folder = _session_folder(config, root / f"claude-proxy-{'e' * 32}")
    # Not ours to judge: no owner file (an older version, or being created), another name, a symlink.
    unmarked = root / "claude-proxy-olderversion"
    unmarked.mkdir()
    other = root / "something-else"
    other.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (root / "claude-proxy-link").symlink_to(target)
    foreign_folder = config / "projects" / "-home-someone-project"
    foreign_folder.mkdir()

    second = Run.begin(root, [config])
    try:
        assert not dead_root.exists()
        assert not dead_folder.exists() and not orphan_folder.exists()
        assert not (config / RUNS_DIR / f"{dead_id}.lock").exists()
        assert live.workroot.is_dir() and (live_folder / "0000.jsonl").exists()
        assert (config / RUNS_DIR / f"{live.id}.lock").exists()
        assert unmarked.is_dir() and other.is_dir() and target.is_dir() and foreign_folder.is_dir()
    finally:
        second.end()
    live.end()
    assert not live.workroot.exists() and not live_folder.exists()
    assert list((config / RUNS_DIR).iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == [
        "claude-proxy-link",
        "claude-proxy-olderversion",
        "something-else",
    ]


def test_end_removes_every_file_of_the_run(tmp_path):
    run = Run.begin(tmp_path / "work", [tmp_path / "config"])
    assert run.workroot.name == f"claude-proxy-{run.id}"
    assert oct(run.workroot.stat().st_mode & 0o777) == "0o700"
    folder = _session_folder(tmp_path / "config", run.workroot)
    (run.workroot / "w1").mkdir()
    run.end()
    assert not run.workroot.exists() and not folder.exists()
    assert list((tmp_path / "config" / RUNS_DIR).iterdir()) == []
    run.end()  # twice is harmless


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_run_over_several_accounts_config_dirs_cleans_each_of_them(tmp_path):
    root, alice, bob = tmp_path / "work", tmp_path / "alice", tmp_path / "bob"
    dead_id = "f" * 32
    dead_root = root / f"claude-proxy-{dead_id}"
    (bob / RUNS_DIR).mkdir(parents=True)
    _dead_run_lock(bob / RUNS_DIR / f"{dead_id}.lock")
    dead_folder = _session_folder(bob, dead_root)

    run = Run.begin(root, [alice, bob, alice])  # an account without a config dir of its own shares one
    assert not dead_folder.exists()  # swept from the second account's dir too
    assert [lock.name for lock in (alice / RUNS_DIR).iterdir()] == [f"{run.id}.lock"]
    assert [lock.name for lock in (bob / RUNS_DIR).iterdir()] == [f"{run.id}.lock"]
    folders = [_session_folder(config, run.workroot) for config in (alice, bob)]
    run.end()
    assert not any(folder.exists() for folder in folders)
    assert list((alice / RUNS_DIR).iterdir()) == [] and list((bob / RUNS_DIR).iterdir()) == []


def test_without_a_config_dir_only_workroots_are_handled(tmp_path):
    run = Run.begin(tmp_path, [])
    assert sweep(tmp_path, []).workroots == 0  # its own is alive
    run.end()
    assert list(tmp_path.iterdir()) == []


def _status(config: Path, pid: int, **fields) -> Path:
    sessions = config / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    path = sessions / f"{pid}.json"
    path.write_text(json.dumps({"pid": pid, **fields}))
    return path


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_status_files_of_processes_that_are_gone_are_removed(tmp_path):
    config = tmp_path / "config"
    # A live "claude" process (argv[0] is what tells).
    cli = subprocess.Popen(["claude", "60"], executable="/bin/sleep")
    other_cli = subprocess.Popen(["/opt/x/claude", "60"], executable="/bin/sleep")
    try:
        start = leftovers._start_time(cli.pid)
        domain = f"linux:{leftovers._machine_id()}:{leftovers._pid_namespace()}"
        live = _status(config, cli.pid, procStart=start, pidDomain=domain)
        live_without_start = _status(config, other_cli.pid)  # no procStart: told by its argv
        dead = subprocess.Popen(["true"])
        dead.wait()
        gone = _status(config, dead.pid, procStart="1")
        reused = _status(config, os.getpid(), procStart="1", pidDomain=domain)  # our pid, another start
        not_claude = _status(config, 1)  # pid 1 runs, but is no CLI (and has no procStart)
        elsewhere = _status(config, dead.pid + 100000, pidDomain="linux:other-machine:pid:[1]")
        (config / "sessions" / "notes.txt").write_text("not a status file")
        assert remove_stale_status_files(config) == 3
        assert live.exists() and live_without_start.exists() and elsewhere.exists()
        assert not gone.exists() and not reused.exists() and not not_claude.exists()
        assert (config / "sessions" / "notes.txt").exists()
    finally:
        for process in (cli, other_cli):
            process.kill()
            process.wait()
    assert remove_stale_status_files(config) == 2  # their processes have ended
