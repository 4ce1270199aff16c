"""Fixtures for end-to-end tests: the pinned CLI, a scripted upstream, and real servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ensure_cli
from tests.support.codex import ensure_codex
from tests.support.redis_server import PrivateRedis
from tests.support.server import RunningServer, RunningWorker
from tests.support.upstream import ScriptedUpstream


@pytest.fixture(scope="session")
def cli_binary() -> Path:
    return ensure_cli()


@pytest.fixture(scope="session")
def codex_binary() -> Path:
    """The pinned Codex CLI; `make cli` installs it, this installs it too when it is missing."""
    return ensure_codex()


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream().start()
    yield upstream
    upstream.stop()


def _disallowed_tools_offered(upstream: ScriptedUpstream) -> list[str]:
    """Tools any request offered the model that are neither the caller's nor the CLI's schema tool."""
    return [
        tool.get("name", "?")
        for recorded in upstream.requests
        for tool in recorded.body.get("tools") or []
        if not (tool.get("name") == "StructuredOutput" or str(tool.get("name", "")).startswith("mcp__proxy__"))
    ]


@pytest.fixture()
def upstream(upstream_server: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    upstream_server.reset()
    yield upstream_server
    # Security invariant, checked after every test of every request kind: Claude Code's own tools
    # (Bash, Read, Write, ...) never reach the model.
    assert _disallowed_tools_offered(upstream_server) == []


@pytest.fixture(scope="session")
def server(cli_binary: Path, upstream_server: ScriptedUpstream, tmp_path_factory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("server"), cli=cli_binary, upstream_url=upstream_server.url)
    running.start()
    yield running
    running.stop()


@pytest.fixture()
def make_server(
    cli_binary: Path, upstream_server: ScriptedUpstream, tmp_path
) -> Iterator[Callable[..., RunningServer]]:
    """Starts a server with extra config for one test; all are stopped afterwards."""
    started: list[RunningServer] = []

    def make(config: dict[str, Any] | None = None, name: str = "srv", oauth_token: str | None = None) -> RunningServer:
        running = RunningServer(
            tmp_path / f"{name}{len(started)}", cli=cli_binary, upstream_url=upstream_server.url, config=config
        )
        if oauth_token is not None:
            running.use_oauth(oauth_token)  # a Claude plan's subscription mode
        started.append(running)
        return running.start()

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """REDIS_URL when given, else a private redis-server started for this test run."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture()
def redis_config(redis_url: str) -> dict[str, Any]:
    """Config that points servers at Redis under a key prefix of their own test."""
    return {"redis": {"url": redis_url, "prefix": f"test-{uuid.uuid4().hex[:8]}:"}}


@pytest.fixture()
def make_worker(
    cli_binary: Path, upstream_server: ScriptedUpstream, tmp_path
) -> Iterator[Callable[..., RunningWorker]]:
    """Starts `claude-proxy worker` processes for one test; all are stopped afterwards."""
    started: list[RunningWorker] = []

    def make(config: dict[str, Any] | None = None, name: str = "worker") -> RunningWorker:
        running = RunningWorker(
            tmp_path / f"{name}{len(started)}", cli=cli_binary, upstream_url=upstream_server.url, config=config
        )
        started.append(running)
        return running.start()

    yield make
    for running in started:
        running.stop()
