"""Prometheus metrics, in process, rendered in the text exposition format at `GET /metrics`.

No client library: counters and histograms are plain dictionaries keyed by label values, which
is all a single process needs. Labels carry route templates, model names, statuses and project
names; every value is escaped as the exposition format requires, so no value can end a label
or start a line of its own, whatever rules its source enforces.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import Message, Scope

access = logging.getLogger("claude_proxy.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def label_value(value: str) -> str:
    """A label value escaped for the text format: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    """`{name="value",...}` with every value escaped."""
    return "{" + ",".join(f'{name}="{label_value(value)}"' for name, value in pairs.items()) + "}"


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * (len(buckets) + 1))
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.counts[labels]
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.sums[labels] += value


class Metrics:
    """One per app; `render` is what `/metrics` returns."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # route, method, status
        self.latency = _Histogram(LATENCY_BUCKETS)  # route
        self.completions: dict[tuple[str, str, str], int] = defaultdict(int)  # model, claude model, status
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)  # project, kind
        self.spend: dict[str, float] = defaultdict(float)  # project
        self.cache: dict[str, int] = defaultdict(int)  # hit | miss
        # Choices by how the backend found their process (`core.types.PROCESS_PATHS`), and the
        # time of those that ended, from the choice's start (its wait for a slot included).
        self.processes: dict[str, int] = defaultdict(int)
        self.process_latency = _Histogram(LATENCY_BUCKETS)  # process path
        self.gauges: list[Callable[[], dict[str, Any]]] = []
        # The Claude accounts with their plan's usage windows, as `ChatBackend.accounts` gives them.
        self.accounts: Callable[[], list[dict[str, Any]]] = list

    def observe_response(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, str(status))] += 1
        self.latency.observe((route,), seconds)

    def observe_completion(
        self, *, project: str, model: str, claude_model: str, status: int, prompt: int, completion: int, cost: float
    ) -> None:
        self.completions[(model, claude_model, str(status))] += 1
        self.tokens[(project, "prompt")] += prompt
        self.tokens[(project, "completion")] += completion
        self.spend[project] += cost

    def observe_process(self, path: str, seconds: float | None) -> None:
        """One choice served on a process found by `path`; `seconds` when it ran to its end."""
        self.processes[path] += 1
        if seconds is not None:
            self.process_latency.observe((path,), seconds)

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("claude_proxy_http_requests_total", "counter", "HTTP responses by route template, method and status.")
        for (route, method, status), value in sorted(self.requests.items()):
            lines.append(f"claude_proxy_http_requests_total{labels(route=route, method=method, status=status)} {value}")
        family("claude_proxy_http_request_duration_seconds", "histogram", "Time to the response start, by route.")
        lines += _histogram_lines("claude_proxy_http_request_duration_seconds", "route", self.latency)
        family(
            "claude_proxy_completions_total", "counter", "Metered completions by requested model, Claude model, status."
        )
        for (model, claude, status), value in sorted(self.completions.items()):
            lines.append(
                f"claude_proxy_completions_total{labels(model=model, claude_model=claude, status=status)} {value}"
            )
        family("claude_proxy_tokens_total", "counter", "Tokens returned to callers, by project and kind.")
        for (project, kind), value in sorted(self.tokens.items()):
            lines.append(f"claude_proxy_tokens_total{labels(project=project, kind=kind)} {value}")
        family("claude_proxy_spend_usd_total", "counter", "Settled cost in USD, by project.")
        for project, usd in sorted(self.spend.items()):
            lines.append(f"claude_proxy_spend_usd_total{labels(project=project)} {usd}")
        family("claude_proxy_cache_lookups_total", "counter", "Response cache lookups by result.")
        for result, value in sorted(self.cache.items()):
            lines.append(f"claude_proxy_cache_lookups_total{labels(result=result)} {value}")
        family("claude_proxy_process_paths_total", "counter", "Choices by how the CLI process was found.")
        for path, value in sorted(self.processes.items()):
            lines.append(f"claude_proxy_process_paths_total{labels(process=path)} {value}")
        family(
            "claude_proxy_process_duration_seconds",
            "histogram",
            "Time of a choice that ended, from its start, by how its process was found.",
        )
        lines += _histogram_lines("claude_proxy_process_duration_seconds", "process", self.process_latency)
        family("claude_proxy_plan_utilization", "gauge", "Used fraction of the Claude plan's window, by account.")
        for account in self.accounts():
            for window, state in sorted(account.get("windows", {}).items()):
                utilization = state.get("utilization")
                if isinstance(utilization, (int, float)) and not isinstance(utilization, bool):
                    pair = labels(account=str(account.get("name", "")), window=str(window))
                    lines.append(f"claude_proxy_plan_utilization{pair} {float(utilization)}")
        for gauge in self.gauges:
            for name, value in sorted(gauge().items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    family(f"claude_proxy_pool_{name}", "gauge", f"CLI pool: {name.replace('_', ' ')}.")
                    lines.append(f"claude_proxy_pool_{name} {value}")
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, label: str, histogram: _Histogram) -> list[str]:
    """The bucket, sum and count lines of a histogram with one label."""
    lines: list[str] = []
    for (value,), counts in sorted(histogram.counts.items()):
        for bound, count in zip((*histogram.buckets, float("inf")), counts, strict=True):
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f"{name}_bucket{labels(**{label: value, 'le': le})} {count}")
        lines.append(f"{name}_sum{labels(**{label: value})} {histogram.sums[(value,)]}")
        lines.append(f"{name}_count{labels(**{label: value})} {counts[-1]}")
    return lines


def timing_hook(metrics: Metrics) -> Callable[[Message, Scope], Any]:
    """A `before_send` hook: counts each response by its route template when it starts."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        state = scope.get("state", {})
        started = state.get("started_at")
        route = scope.get("path_template") or "unmatched"
        method = scope.get("method", "") if scope["type"] == ScopeType.HTTP else ""
        seconds = time.perf_counter() - started if started is not None else 0.0
        metrics.observe_response(route, method, message["status"], seconds)
        # The text format shows only the message, so it carries what an operator greps for; the
        # path of an unmatched request is the raw one (still percent-encoded: no control
        # characters reach the log), cut short, and never has the query string.
        path = route if route != "unmatched" else (scope.get("raw_path") or b"").decode("latin-1")[:200]
        access.info(
            "%s %s %s %.1fms",
            method or scope["type"],
            path,
            message["status"],
            seconds * 1000,
            extra={
                "request_id": state.get("request_id"),
                "route": route,
                "path": path,
                "method": method,
                "status": message["status"],
                "duration_ms": round(seconds * 1000, 1),
            },
        )

    return hook
