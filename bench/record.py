"""Latencies of the mixed workload's requests, by workload and by how the pool found the
process that served each (the `x-claude-proxy-process` header)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from bench.measure import percentiles

PROCESS_HEADER = "x-claude-proxy-process"
UNKNOWN = "unknown"  # a response without the header (the cold side, or a proxy without it)


class Recorder:
    """Thread-safe: every caller thread adds what its requests took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.by_path: dict[str, list[float]] = defaultdict(list)
        self.by_kind_path: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.requests = 0

    def add(self, kind: str, seconds: float, process: str | None = None) -> None:
        path = process or UNKNOWN
        with self.lock:
            self.latencies[kind].append(seconds)
            self.by_path[path].append(seconds)
            self.by_kind_path[(kind, path)].append(seconds)
            self.requests += 1

    def paths(self) -> dict[str, Any]:
        """Per path: its share of the requests recorded, and p50/p90/p99 of their latency."""
        total = max(self.requests, 1)
        return {
            path: {"share": len(samples) / total, **percentiles(samples)}
            for path, samples in sorted(self.by_path.items())
        }

    def paths_without(self, kinds: set[str]) -> dict[str, Any]:
        """Per path, p50/p90/p99 of the requests of the workloads not in `kinds`."""
        by_path: dict[str, list[float]] = defaultdict(list)
        for (kind, path), samples in self.by_kind_path.items():
            if kind not in kinds:
                by_path[path] += samples
        return {path: percentiles(samples) for path, samples in sorted(by_path.items())}

    def kinds_by_path(self) -> dict[str, dict[str, Any]]:
        """Per workload, per path: how many requests, and their p50/p99."""
        out: dict[str, dict[str, Any]] = defaultdict(dict)
        for (kind, path), samples in sorted(self.by_kind_path.items()):
            figures = percentiles(samples)
            out[kind][path] = {"n": figures["n"], "p50": figures["p50"], "p99": figures["p99"]}
        return dict(out)


def path_p50s(report: dict[str, Any]) -> dict[str, float]:
    """The p50 latency per path of a mixed report, for a plot."""
    return {path: figures["p50"] for path, figures in report["latency_by_path_s"].items()}
