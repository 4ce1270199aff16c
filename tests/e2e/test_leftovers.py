"""What runs leave on disk: a restart removes a killed server's files, never a live server's,
and a clean stop leaves none of its own."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer, cmdline
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

CONFIG = {"pool": {"size": 4, "spares": 1, "warm_max": 2}, "server": {"shutdown_grace_s": 1}}


def _history(tag: str, last: str) -> list[dict]:
    return [
        {"role": "user", "content": f"{tag} old"},
        {"role": "assistant", "content": f"Echo: {tag} old"},
        {"role": "user", "content": last},
    ]


def _ask(server: RunningServer, messages: list[dict]) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": messages},
        timeout=30,
    )


def _in_background(server: RunningServer, messages: list[dict]) -> tuple[threading.Thread, list[str]]:
    """A streamed request in a thread; the list gets its text once the stream is done."""
    result: list[str] = []

    def run() -> None:
        text = []
        with contextlib.suppress(httpx.HTTPError):
            with httpx.stream(
                "POST",
                server.base_url + "/chat/completions",
                headers=server.headers,
                json={"model": "gpt-4o", "messages": messages, "stream": True},
                timeout=60,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        choices = json.loads(line.removeprefix("data: "))["choices"]
                        text.append(choices[0]["delta"].get("content") or "" if choices else "")
            result.append("".join(text))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


class Files:
    """What one run of a server owns in the shared work and config dirs."""

    def __init__(self, work: Path, config: Path, server: RunningServer) -> None:
        assert server.proc is not None
        self.work, self.config = work, config
        owners = [p.parent for p in work.glob("claude-proxy-*/owner.lock") if _owner_pid(p) == server.proc.pid]
        assert len(owners) == 1, owners
        self.workroot = owners[0]
        self.run_id = self.workroot.name.removeprefix("claude-proxy-")
        self.lock = config / "claude-proxy-runs" / f"{self.run_id}.lock"

    def session_files(self) -> list[Path]:
        return list((self.config / "projects").glob(f"*-claude-proxy-{self.run_id}-w*/*.jsonl"))

    def status_files(self, pids: list[int]) -> list[Path]:
        return [self.config / "sessions" / f"{pid}.json" for pid in pids]


def _owner_pid(path: Path) -> int | None:
    try:
        return json.loads(path.read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture()
def shared(cli_binary, upstream_server, tmp_path) -> Iterator:
    """Servers that share one `claude.workdir` and one CLI config dir."""
    work, config = tmp_path / "work", tmp_path / "claude-config"
    started: list[RunningServer] = []

    def make(name: str) -> RunningServer:
        server = RunningServer(
            tmp_path / name,
            cli=cli_binary,
            upstream_url=upstream_server.url,
            config={**CONFIG, "claude": {"workdir": str(work)}},
        )
        server.env["CLAUDE_CONFIG_DIR"] = str(config)
        started.append(server)
        return server.start()

    yield make, work, config
    for server in started:
        server.stop()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and "claude" in " ".join(cmdline(pid))


def test_restart_after_sigkill_removes_the_dead_runs_files_and_spares_a_live_servers(shared, upstream):
    make, work, config = shared
    killed, live = make("killed"), make("live")
    live_files = Files(work, config, live)

    # The live server: a kept conversation resumed from a session file, and a slow stream with
    # history that is still running while the other server restarts.
    assert _ask(live, _history("kept", "kept turn")).status_code == 200
    upstream.on("slow-live", Reply(chunks=[f"c{i} " for i in range(40)], chunk_delay=0.2))
    slow, slow_text = _in_background(live, _history("slowconv", "slow-live"))
    assert upstream.wait_for(lambda: upstream.requests_matching("slow-live"))
    assert len(live_files.session_files()) == 2
    live_pids = live.cli_pids()

    # The server to kill: a request with history in flight, so its session file exists.
    upstream.on("hold-killed", Reply(chunks=["first ", "x"], hang_after=1))
    held, _ = _in_background(killed, _history("dying", "hold-killed"))
    assert upstream.wait_for(lambda: upstream.requests_matching("hold-killed"))
    old = Files(work, config, killed)
    assert old.session_files()
    old_pids = killed.cli_pids()
    assert killed.wait_until(lambda: all(p.exists() for p in old.status_files(old_pids)))
    assert killed.proc is not None
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait()
    held.join(15)
    assert killed.wait_until(lambda: not any(_running(pid) for pid in old_pids))
    # What the crash left: caller text on disk, a work directory, the CLI's status files.
    assert old.session_files() and old.workroot.is_dir() and old.lock.exists()
    assert any(p.exists() for p in old.status_files(old_pids))

    killed.start()  # ready once the pool has started, which sweeps first
    assert not old.session_files()
    assert not old.workroot.exists() and not old.lock.exists()
    assert not any(p.exists() for p in old.status_files(old_pids))
    assert not list((config / "projects").glob(f"*{old.run_id}*"))

    # The live server lost nothing: its files are there, its stream and its conversation go on.
    assert not slow_text, "the slow stream must still run while the other server restarts"
    assert live_files.workroot.is_dir() and live_files.lock.exists()
    assert len(live_files.session_files()) == 2
    assert all(p.exists() for p in live_files.status_files([pid for pid in live_pids if _running(pid)]))
    slow.join(30)
    assert slow_text == ["".join(f"c{i} " for i in range(40))]
    warm_before = live.health()["pool"]["warm_hits"]
    following = [*_history("kept", "kept turn"), {"role": "assistant", "content": "Echo: kept turn"}]
    assert _ask(live, [*following, {"role": "user", "content": "kept next"}]).status_code == 200
    assert live.health()["pool"]["warm_hits"] == warm_before + 1

    # And the restarted server works, with a new run of its own.
    assert _ask(killed, _history("again", "again turn")).json()["choices"][0]["message"]["content"] == (
        "Echo: again turn"
    )
    assert Files(work, config, killed).run_id != old.run_id


def test_a_clean_stop_leaves_none_of_its_files(make_server, upstream):
    server = make_server(CONFIG)
    work, config = server.workdir / "cli-work", server.workdir / "claude-config"
    assert _ask(server, _history("warmconv", "warm turn")).status_code == 200  # kept, with a session file
    upstream.on("hold-at-stop", Reply(chunks=["first ", "x"], hang_after=1))
    held, _ = _in_background(server, _history("stopping", "hold-at-stop"))
    assert upstream.wait_for(lambda: upstream.requests_matching("hold-at-stop"))
    files = Files(work, config, server)
    assert len(files.session_files()) == 2
    pids = server.cli_pids()
    assert server.wait_until(lambda: all(p.exists() for p in files.status_files(pids)))

    server.stop()  # SIGTERM with a request in flight
    held.join(15)
    assert list(work.iterdir()) == []
    assert list((config / "projects").iterdir()) == []
    assert list((config / "sessions").iterdir()) == []
    assert list((config / "claude-proxy-runs").iterdir()) == []
