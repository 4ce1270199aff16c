"""Soak: mixed traffic with random disconnects for a while, then the books must balance.

`python -m bench.soak --seconds 600` is the long mode; the test suite runs a short one. Traffic at
a fixed concurrency: plain, streamed (some dropped halfway), cached, and a batch. Afterwards:
no 5xx, no CLI process beyond the pool's own, server RSS growth under 10% after warm-up, and the
usage ledger equal to the usage callers received.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.measure import rss_mb
from tests.support.cli import ensure_cli
from tests.support.server import RunningServer
from tests.support.upstream import Reply, ScriptedUpstream


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.prompt = 0
        self.completion = 0
        self.dropped = 0

    def add(self, status: int, usage: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if usage:
                self.prompt += usage["prompt_tokens"]
                self.completion += usage["completion_tokens"]


def _one(client: httpx.Client, rng: random.Random, tally: Tally, i: int) -> None:
    kind = rng.choice(["plain", "stream", "drop", "cached"])
    content = "soak cached question" if kind == "cached" else f"soak {kind} {i}"
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    if kind in ("stream", "drop"):
        body.update(stream=True, stream_options={"include_usage": True})
        with client.stream("POST", "/chat/completions", json=body) as response:
            usage = None
            for line in response.iter_lines():
                if kind == "drop" and '"content":"' in line and '"content":""' not in line:
                    with tally.lock:
                        tally.dropped += 1
                    return  # leaving the block closes the connection mid-stream
                if line.startswith("data: {") and '"usage":{' in line:
                    usage = json.loads(line[6:])["usage"]
            tally.add(response.status_code, usage)
        return
    response = client.post("/chat/completions", json=body)
    tally.add(response.status_code, response.json().get("usage") if response.status_code == 200 else None)


def soak(seconds: float, concurrency: int, workdir: Path) -> dict[str, Any]:
    upstream = ScriptedUpstream().start()
    upstream.on("soak drop", Reply(chunks=["a ", "b ", "c ", "d"], chunk_delay=0.1))
    server = RunningServer(
        workdir / "server",
        cli=ensure_cli(),
        upstream_url=upstream.url,
        config={"pool": {"size": 4, "spares": 1, "max_queue": 64, "queue_timeout_s": 60}, "cache": {"enabled": True}},
    ).start()
    tally, rng = Tally(), random.Random(7)
    try:
        headers = server.headers
        lines = [
            {
                "custom_id": f"s{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"soak batch {i}"}]},
            }
            for i in range(6)
        ]
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as admin:
            upload = admin.post(
                "/files",
                data={"purpose": "batch"},
                files={"file": ("soak.jsonl", io.BytesIO("\n".join(map(json.dumps, lines)).encode()))},
            )
            batch = admin.post(
                "/batches",
                json={
                    "input_file_id": upload.json()["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            ).json()
        warm_rss = None
        deadline = time.monotonic() + seconds
        warm_up_at = time.monotonic() + min(seconds / 4, 30)
        counter = iter(range(10**9))
        with ThreadPoolExecutor(max_workers=concurrency) as pool:

            def worker() -> None:
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
                    while time.monotonic() < deadline:
                        _one(client, rng, tally, next(counter))

            futures = [pool.submit(worker) for _ in range(concurrency)]
            while time.monotonic() < deadline:
                if warm_rss is None and time.monotonic() >= warm_up_at:
                    warm_rss = rss_mb(server.proc.pid)
                time.sleep(0.2)
            for future in futures:
                future.result()
        final_rss = rss_mb(server.proc.pid)
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            batch_deadline = time.monotonic() + 120
            while client.get(f"/batches/{batch['id']}").json()["status"] != "completed":
                if time.monotonic() > batch_deadline:
                    raise RuntimeError("the soak batch did not complete")
                time.sleep(0.2)
            settled_deadline = time.monotonic() + 30
            while (usage := client.get("/usage").json())["reserved_usd"] > 0 and time.monotonic() < settled_deadline:
                time.sleep(0.1)
            output_file = client.get(f"/batches/{batch['id']}").json()["output_file_id"]
            batch_usage = sum(
                json.loads(line)["response"]["body"]["usage"]["prompt_tokens"]
                for line in client.get(f"/files/{output_file}/content").text.splitlines()
            )
        health = server.health()
        extra = len(server.cli_pids()) - health["pool"]["processes"]
        return {
            "seconds": seconds,
            "concurrency": concurrency,
            "statuses": tally.statuses,
            "dropped_mid_stream": tally.dropped,
            "server_5xx": sum(n for status, n in tally.statuses.items() if status >= 500),
            "cli_processes_beyond_pool": extra,
            "rss_warm_mb": warm_rss,
            "rss_final_mb": final_rss,
            "rss_growth": (final_rss - warm_rss) / warm_rss if warm_rss else 0.0,
            "ledger_prompt_tokens": usage["prompt_tokens"],
            "received_prompt_tokens": tally.prompt + batch_usage,
            "reserved_usd_after": usage["reserved_usd"],
        }
    finally:
        server.stop()
        upstream.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    report = soak(args.seconds, args.concurrency, Path(tempfile.mkdtemp(prefix="claude-proxy-soak-")))
    print(json.dumps(report, indent=2))  # noqa: T201 - the soak's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
