"""Measuring helpers of the benchmark: percentiles, CPU and memory from /proc, load shapes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from adapters.claude_cli.process import status_mb
from tests.support.server import descendants

if TYPE_CHECKING:
    from bench.sides import Proxy


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": statistics.median(ordered), "p90": pick(0.9), "p99": pick(0.99), "n": len(ordered)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and of every process below it, the live ones (kept CLIs) included."""
    total = cpu_seconds(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError):  # exited meanwhile: its time is in its parent's children time
            total += cpu_seconds(child)
    return total


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory; `RssAnon` leaves out the pages of the CLI's binary, which every CLI
    process shares."""
    value = status_mb(pid, field)
    return float("nan") if value is None else value


def pss_mb(pid: int) -> float:
    """Proportional memory: private pages plus each shared page divided among the processes
    mapping it (the binary's pages, shared by every CLI, count a share each)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def interleaved(rounds: int, a: Callable[[int], float], b: Callable[[int], float]) -> tuple[list[float], list[float]]:
    first, second = [], []
    for i in range(rounds):
        first.append(a(i))
        second.append(b(i))
    return first, second


def throughput(concurrency: int, total: int, one: Callable[[int], float]) -> tuple[float, list[float]]:
    """Requests per second with `concurrency` callers, and each request's latency."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(one, range(total)))
    return total / (time.perf_counter() - start), latencies


def cache_load(proxy: Proxy, concurrency: int, seconds: float) -> dict[str, float]:
    body = {"model": "haiku", "messages": [{"role": "user", "content": "cached benchmark question"}]}
    with httpx.Client(base_url=proxy.server.base_url, headers=proxy.server.headers, timeout=30) as client:
        client.post("/chat/completions", json=body).raise_for_status()  # fill the cache
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        with httpx.Client(base_url=proxy.server.base_url, headers=proxy.server.headers, timeout=30) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = client.post("/chat/completions", json=body)
                elapsed = time.perf_counter() - start
                if response.headers.get("x-cache") != "hit":
                    raise RuntimeError("cache miss during the cache benchmark")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": len(latencies) / (time.perf_counter() - began), **percentiles(latencies)}


def wrk_cache_load(proxy: Proxy, *, connections: int, seconds: int) -> dict[str, float] | None:
    """The cache-hit path under wrk (a C load generator, 1 thread), when wrk is installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = json.dumps({"model": "haiku", "messages": [{"role": "user", "content": "cached benchmark question"}]})
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "{proxy.server.headers["Authorization"]}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %f %f %f %d\\n", summary.requests, summary.duration,'
        " latency:percentile(50), latency:percentile(99), latency.max, summary.errors.status))\n"
        "end\n"
    )
    done = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            proxy.server.base_url + "/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, max_us, bad = line.split()[1:]
    if int(bad):
        raise RuntimeError(f"wrk saw {bad} non-2xx answers on the cache path")
    return {
        "rps": int(requests) / (int(duration_us) / 1e6),
        "p50": float(p50_us) / 1e6,
        "p99": float(p99_us) / 1e6,
        "max": float(max_us) / 1e6,
        "n": int(requests),
        "connections": connections,
    }
