"""A profile of the server's own hot path: pyinstrument samples the server thread while it answers
uncached requests (through the real CLI) and cache hits.

Run: .venv/bin/python -m bench.profile [--requests 40] [--hits 2000]. Prints the call tree (the CLI
processes are children and are not in it: what is shown is the proxy's own time).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import uvicorn
from pyinstrument import Profiler

from adapters.claude_cli.backend import ClaudeCliBackend
from proxy.app import create_app
from proxy.settings import load_settings
from tests.support.cli import ensure_cli
from tests.support.server import RunningServer
from tests.support.upstream import ScriptedUpstream


def _hits(job: tuple[str, dict, dict, int]) -> None:
    base, headers, body, count = job
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(count):
            client.post("/chat/completions", json=body).raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40, help="uncached requests (each runs the CLI)")
    parser.add_argument("--hits", type=int, default=2000, help="cache hits")
    parser.add_argument("--all", action="store_true", help="show library frames too")
    args = parser.parse_args()
    binary = ensure_cli()
    upstream = ScriptedUpstream().start()
    # The tests' server set-up (config file, key, CLI environment), run in this process instead.
    running = RunningServer(
        Path(tempfile.mkdtemp(prefix="claude-proxy-profile-")),
        cli=binary,
        upstream_url=upstream.url,
        config={"pool": {"spares": 2, "spare_model": "haiku"}, "cache": {"enabled": True}},
    )
    settings = load_settings(running.config_path)
    app = create_app(settings, backend=ClaudeCliBackend(settings.claude, settings.pool, environ=running.env))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=running.port, log_config=None))
    profiler = Profiler(async_mode="disabled", interval=0.0005)

    def serve() -> None:
        profiler.start()
        try:
            server.run()
        finally:
            profiler.stop()

    thread = threading.Thread(target=serve)
    thread.start()
    base, headers = running.base_url, running.headers
    running.wait_until(lambda: running.ready(0), timeout=30)
    try:
        with httpx.Client(base_url=base, headers={**headers, "Cache-Control": "no-store"}, timeout=60) as client:
            for i in range(args.requests):
                body = {"model": "haiku", "messages": [{"role": "user", "content": f"profile {i}"}]}
                client.post("/chat/completions", json=body).raise_for_status()
        hit = {"model": "haiku", "messages": [{"role": "user", "content": "profile cached"}]}
        httpx.post(f"{base}/chat/completions", json=hit, headers=headers, timeout=60).raise_for_status()

        # The load runs in other processes, so it does not compete with the server for the GIL.
        with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_hits, [(base, headers, hit, args.hits // 4)] * 4))
    finally:
        server.should_exit = True
        thread.join()
        upstream.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=args.all))  # noqa: T201 - the report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
