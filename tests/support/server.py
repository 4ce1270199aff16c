"""Runs the real server (`python -m proxy serve`) as a subprocess on a free port."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from budgets.database import open_database
from budgets.keys import KeyStore, Project

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "admin-key-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    # Arguments end in NUL; empty ones (`--tools ""`) must survive the split.
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


class RunningServer:
    """A server process with its own config, storage dir and CLI config dir."""

    def __init__(self, workdir: Path, *, cli: Path, upstream_url: str, config: dict[str, Any] | None = None):
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        settings = deep_merge(
            {
                "server": {"host": "127.0.0.1", "port": self.port, "request_timeout_s": 30, "log_level": "warning"},
                "claude": {"binary": str(cli), "workdir": str(workdir / "cli-work")},
                "storage": {"path": str(workdir / "data")},
                "pool": {"size": 4, "spares": 1, "spare_model": "sonnet", "max_queue": 16, "queue_timeout_s": 20},
                # Tests send bad keys on purpose from one address; the limit has a test of its own.
                "auth": {"admin_key": ADMIN_KEY, "max_failures_per_minute": 1000},
            },
            config or {},
        )
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(settings))
        self.storage = Path(settings["storage"]["path"])
        self.api_key = self.create_key("test-project")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_PROXY_", "ANTHROPIC_"))},
            "ANTHROPIC_BASE_URL": upstream_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-key",
            "CLAUDE_CONFIG_DIR": str(workdir / "claude-config"),
        }
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.max_open_files: int | None = None  # a lower RLIMIT_NOFILE for the server, if set

    def create_key(self, project: str, **limits: Any) -> str:
        """A key for `project` (created with `limits` if new), written straight to the database."""
        db = open_database(self.storage)
        try:
            keys = KeyStore(db)
            current = keys.get_project(project) or Project(name=project)
            for field, value in limits.items():
                setattr(current, field, value)
            keys.upsert_project(current)
            secret, _ = keys.create_key(project)
        finally:
            db.close()
        return secret

    def use_oauth(self, token: str) -> None:
        """Before `start`: the CLI logs in with an OAuth token (a Claude plan's subscription
        mode, not bare) instead of the API key."""
        del self.env["ANTHROPIC_API_KEY"]
        self.env["CLAUDE_CODE_OAUTH_TOKEN"] = token

    def chat(self, text: str, *, key: str | None = None, timeout: float = 30) -> httpx.Response:
        """One user message to `/v1/chat/completions`, with `key` (the test project's by default)."""
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.post(self.base_url + "/chat/completions", json=body, headers=headers, timeout=timeout)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    command = "serve"

    def start(self, timeout: float = 30.0) -> RunningServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", self.command, "--config", str(self.config_path)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_open_files if self.max_open_files else None,  # setrlimit only: safe after fork
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited early:\n{self.log_path.read_text()[-3000:]}")
            if self.ready(start):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.command} did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def _limit_open_files(self) -> None:
        assert self.max_open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def ready(self, log_offset: int) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=5).json()

    def cli_pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [pid for pid in descendants(self.proc.pid) if any("claude" in part for part in cmdline(pid)[:1])]

    def wait_until(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RunningWorker(RunningServer):
    """`claude-proxy worker` with its own CLI pool, fed through Redis."""

    command = "worker"

    def __init__(self, workdir: Path, *, cli: Path, upstream_url: str, config: dict[str, Any] | None = None):
        super().__init__(
            workdir,
            cli=cli,
            upstream_url=upstream_url,
            config=deep_merge({"server": {"log_level": "info"}}, config or {}),
        )

    def ready(self, log_offset: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(log_offset)
            return b" ready: " in log.read()
