"""Mixed traffic, side by side with the cold baseline: many projects, several tool sets,
multi-turn conversations, regenerations, tool loops, streams dropped after their first token, a
batch alongside, at concurrency 8.

`bench.run` runs it as part of `make bench`; `python -m bench.mixed` runs it alone (its own
upstream and server; `--pool '{"max_rss_mb": 200}'` merges pool settings, `--tree DIR` runs
the server from another checkout, for a before/after comparison).

Each caller runs scripts, one after another; a script is one of:
- `one_shot`: a new conversation of one request;
- `conversation`: a new conversation of four turns, each resending the history with the replies;
- `regenerate`: three turns, then the third resent without its answer;
- `tool_loop`: a request that gets a tool call, then the one carrying its result;
- `stopped`: a streamed request for a long answer, dropped after its first token (the chat UI's
  stop button), then the same request again (the user asks again).
Each script has a random project (of `PROJECTS`) and tool set (of three: none, one tool, two
tools); half of the requests stream, read to the end. About 10% of the streams are dropped ones.
The baseline gets the same scripts, each request a cold `claude -p` with the history flattened
into one prompt (a tool loop as two plain requests, a dropped stream read to its first token).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.measure import percentiles, pss_mb, rss_mb
from bench.mixed_plots import PATHS, p50s, plot, plot_shares
from bench.mixed_scripts import CALL, LONG, PROJECTS, TOOLSETS, Scripts, script_upstream
from bench.record import PROCESS_HEADER, Recorder, path_p50s
from bench.sides import Cold, batch_run, flattened
from bench.upstream_process import UpstreamProcess
from bench.watch import Watcher, orphans
from tests.support import server as server_module
from tests.support.cli import ensure_cli
from tests.support.server import RunningServer
from tests.support.upstream import ScriptedUpstream

CONCURRENCY = 8
BATCH_LINES = 24
# Counters of /health's pool section: which path served each request (`PATHS`), and others.
COUNTS = (*PATHS, "primed_hits", "started_total", "recovered", "recover_failed", "memory_closed")
DOCS = Path(__file__).resolve().parents[1] / "docs"
# Room for every request at once (8 callers and 4 batch lines): a smaller pool is full at all
# times, so a request that needs a new process evicts a conversation between its turns
# (measured, docs/performance.md: per 100 requests, size 8 served 13 warm and started 84 processes,
# size 12 45 and 41).
# And room for the projects: a new conversation reuses an idle process of its own project only
# (processes are never shared between projects), so each of the 20 needs one or two kept
# (measured, docs/performance.md: 12 processes started 39 per 100 requests, 40 13 and 64 6).
SERVER_POOL = {"size": 64, "spares": 2, "warm_max": 64, "spare_model": "haiku", "max_queue": 64}


class ProxyCaller:
    """Runs scripts against the proxy with one key per project."""

    def __init__(self, server: RunningServer, scripts: Scripts, keys: list[str], record: Recorder) -> None:
        self.server, self.scripts, self.keys, self.record = server, scripts, keys, record
        self.clients = [
            httpx.Client(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-cache, no-store"},
                timeout=120,
                # Below the server's keep-alive (`server.keep_alive_s`, 5 s): a request sent on a
                # connection just as the server closes it fails with "Server disconnected".
                limits=httpx.Limits(keepalive_expiry=2.0),
            )
            for key in keys
        ]
        self._stream_at = 0
        self._lock = threading.Lock()

    def _streams(self) -> bool:
        with self._lock:
            self._stream_at += 1
            return self.scripts.streams[self._stream_at % len(self.scripts.streams)]

    def _post(self, project: int, kind: str, messages: list[dict[str, Any]], tools: Any, **how: bool) -> dict:
        body: dict[str, Any] = {"model": "haiku", "messages": messages}
        if tools:
            body["tools"] = tools
        client = self.clients[project]
        start = time.perf_counter()
        if how.get("drop") or (how.get("may_stream", True) and self._streams()):
            body["stream"] = True
            text, calls = "", {}
            with client.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                process = response.headers.get(PROCESS_HEADER)
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    text += delta.get("content") or ""
                    for call in delta.get("tool_calls") or []:
                        calls.setdefault(call["index"], call)
                    if how.get("drop") and text:
                        self.record.add("stopped_first_token", time.perf_counter() - start, process)
                        return {}
            self.record.add(kind, time.perf_counter() - start, process)
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = [calls[i] | {"type": "function"} for i in sorted(calls)]
            return message
        response = client.post("/chat/completions", json=body)
        response.raise_for_status()
        self.record.add(kind, time.perf_counter() - start, response.headers.get(PROCESS_HEADER))
        message = response.json()["choices"][0]["message"]
        return {key: value for key, value in message.items() if key in ("role", "content", "tool_calls")}

    def run(self, item: tuple[str, int, int, int]) -> None:
        kind, project, toolset, n = item
        tools = TOOLSETS[toolset]
        system = {"role": "system", "content": f"project {project} assistant"}
        user = f"p{project} s{n}"
        if kind == "one_shot":
            self._post(project, kind, [system, {"role": "user", "content": f"{user} one-shot"}], tools)
        elif kind in ("conversation", "regenerate"):
            messages: list[dict[str, Any]] = [system]
            for turn in range(4 if kind == "conversation" else 3):
                messages.append({"role": "user", "content": f"{user} turn {turn}"})
                label = "conversation_first_turn" if turn == 0 else "conversation_next_turn"
                messages.append(self._post(project, label, messages, tools))
            if kind == "regenerate":
                self._post(project, "regenerate", messages[:-1], tools)
        elif kind == "tool_loop":
            tools = tools or TOOLSETS[1]
            assert tools is not None
            ask = [system, {"role": "user", "content": f"{user} {CALL} {tools[0]['function']['name']}"}]
            called = self._post(project, "tool_call", ask, tools, may_stream=False)
            (call,) = called["tool_calls"]
            result = {"role": "tool", "tool_call_id": call["id"], "content": f"{user} result"}
            self._post(project, "tool_result", [*ask, called, result], tools)
        else:
            ask = [system, {"role": "user", "content": f"{user} {LONG}"}]
            self._post(project, kind, ask, tools, drop=True)
            self._post(project, "after_stop", ask, tools, may_stream=False)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class ColdCaller:
    """The same scripts, each request a cold `claude -p`."""

    def __init__(self, cold: Cold, record: Recorder) -> None:
        self.cold, self.record = cold, record

    def _run(self, kind: str, prompt: str) -> None:
        self.record.add(kind, self.cold.run(prompt))

    def run(self, item: tuple[str, int, int, int]) -> None:
        kind, project, _, n = item
        user = f"cold p{project} s{n}"
        if kind == "one_shot":
            self._run(kind, f"{user} one-shot")
        elif kind in ("conversation", "regenerate"):
            messages: list[dict[str, str]] = []
            for turn in range(4 if kind == "conversation" else 3):
                messages.append({"role": "user", "content": f"{user} turn {turn}"})
                label = "conversation_first_turn" if turn == 0 else "conversation_next_turn"
                self._run(label, flattened(messages))
                messages.append({"role": "assistant", "content": f"Echo: {user} turn {turn}"})
            if kind == "regenerate":
                self._run("regenerate", flattened(messages[:-1]))
        elif kind == "tool_loop":  # it cannot offer tools: two plain requests, its floor
            self._run("tool_call", f"{user} ask")
            self._run("tool_result", f"{user} result")
        else:
            self.record.add("stopped_first_token", self.cold.first_token(f"{user} stopped"))
            self._run("after_stop", f"{user} again")


def _timed(concurrency: int, items: list[Any], one: Callable[[Any], None], record: Recorder) -> dict[str, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, items))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "requests": record.requests, "rps": record.requests / seconds}


def run(
    server: RunningServer,
    cold: Cold,
    upstream: ScriptedUpstream | UpstreamProcess,
    *,
    scripts: int,
    cold_scripts: int,
    zipf: float = 0.0,
    warmup: int = 0,
    concurrency: int = CONCURRENCY,
) -> dict:
    """The mixed workload on both sides; returns the report section. `warmup` scripts of other
    conversations run first, unmeasured, as a server in use has run others before."""
    if isinstance(upstream, ScriptedUpstream):
        script_upstream(upstream)  # an `UpstreamProcess` has the rules already
    plan = Scripts(scripts, seed=20, zipf=zipf)
    keys = [server.create_key(f"mixed-{i}") for i in range(PROJECTS)]
    if warmup:
        earlier = Scripts(warmup, seed=7, zipf=zipf, first=scripts)  # numbers of their own
        warming = ProxyCaller(server, earlier, keys, Recorder())
        # A batch too: the measured one's project then has processes, as on a server in use.
        warm_batch = threading.Thread(target=batch_run, args=(server, BATCH_LINES // 2, "warm-up batch line"))
        warm_batch.start()
        _timed(concurrency, earlier.items, warming.run, Recorder())
        warm_batch.join()
        warming.close()
    before = server.health()["pool"]
    watcher = Watcher(server, size=before["size"])
    proxy_record = Recorder()
    caller = ProxyCaller(server, plan, keys, proxy_record)
    batch: dict[str, float] = {}
    batch_thread = threading.Thread(target=lambda: batch.update(seconds=batch_run(server, BATCH_LINES)))
    batch_thread.start()
    try:
        proxy_side = _timed(concurrency, plan.items, caller.run, proxy_record)
    finally:
        batch_thread.join()
        caller.close()
        watcher.stop()
    after = server.health()["pool"]
    counts = {name: after.get(name, 0) - before.get(name, 0) for name in COUNTS}
    # Batch lines take pool processes too: the paths count them.
    requests = proxy_record.requests + BATCH_LINES
    clis = server.cli_pids()
    cold_record = Recorder()
    cold_side = _timed(
        concurrency, Scripts(cold_scripts, seed=20, zipf=zipf).items, ColdCaller(cold, cold_record).run, cold_record
    )
    return {
        "scripts": {"proxy": scripts, "cold": cold_scripts, "zipf": zipf, "warmup": warmup},
        "concurrency": concurrency,
        "throughput_rps": {
            "proxy": proxy_side["rps"],
            "cold": cold_side["rps"],
            "ratio": proxy_side["rps"] / cold_side["rps"],
        },
        "requests": {"proxy": proxy_record.requests, "batch_lines": BATCH_LINES, "cold": cold_record.requests},
        "latency_s": {
            kind: {
                "proxy": percentiles(proxy_record.latencies[kind]),
                "cold": percentiles(cold_record.latencies[kind]) if cold_record.latencies[kind] else None,
                "n": len(proxy_record.latencies[kind]),
            }
            for kind in sorted(proxy_record.latencies)
        },
        # Each request's own path (its `x-claude-proxy-process` header), batch lines left out.
        "latency_by_path_s": proxy_record.paths(),
        # The same without the request after a stopped stream: its answer is paced by the
        # scripted upstream (12 deltas 30 ms apart), so it takes 0.33 s on any path.
        "latency_by_path_s_without_paced": proxy_record.paths_without({"after_stop"}),
        "latency_by_workload_and_path_s": proxy_record.kinds_by_path(),
        "paths_per_100_requests": {name: 100 * counts[name] / requests for name in PATHS},
        "started_per_100_requests": 100 * counts["started_total"] / requests,
        "counts": counts,
        "batch_seconds_alongside": batch.get("seconds"),
        "most_cli_processes": watcher.most,
        "most_cli_processes_with_dying": watcher.most_with_dying,
        "most_cli_helpers": watcher.helpers,
        "over_size": watcher.over,
        "pool_size": after["size"],
        "cli_pids_seen": sorted(watcher.seen),
        "rss_mb_at_end": {
            # A process that exited since it was listed reads as NaN: left out.
            "pooled_cli": sorted(round(mb) for mb in (rss_mb(pid) for pid in clis) if mb == mb),
            "pooled_cli_private": sorted(round(mb) for mb in (rss_mb(pid, "RssAnon") for pid in clis) if mb == mb),
            "pooled_cli_proportional": sorted(round(mb) for mb in (pss_mb(pid) for pid in clis) if mb == mb),
        },
    }


def stop_then_ask(server: RunningServer, rounds: int) -> dict[str, Any]:
    """The issue's side-by-side: a stream read to its first token (dropped) or to its end, then a
    one-shot request of the same project and set-up; the one-shot's latency, one after the other."""
    headers = {**server.headers, "Cache-Control": "no-cache, no-store"}
    after: dict[str, list[float]] = {"dropped": [], "read_to_end": []}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
        for i in range(rounds):
            for how in after:
                body = {
                    "model": "haiku",
                    "messages": [{"role": "user", "content": f"{how} {i} {LONG}"}],
                    "stream": True,
                }
                with client.stream("POST", "/chat/completions", json=body) as response:
                    for line in response.iter_lines():
                        if how == "dropped" and '"content":"word' in line:
                            break
                start = time.perf_counter()
                one_shot = {"model": "haiku", "messages": [{"role": "user", "content": f"after {how} {i}"}]}
                client.post("/chat/completions", json=one_shot).raise_for_status()
                after[how].append(time.perf_counter() - start)
                time.sleep(0.3)  # as between a user's requests
    return {how: percentiles(samples) for how, samples in after.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scripts", type=int, default=160)
    parser.add_argument("--cold-scripts", type=int, default=24)
    parser.add_argument(
        "--upstream-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the upstream in its own process",
    )
    parser.add_argument("--claude-env", action="append", default=[], metavar="NAME=VALUE", help="claude.env")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="batches.concurrency of the server")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="callers on each side")
    parser.add_argument("--warmup", type=int, default=80, help="unmeasured scripts run first on the proxy")
    parser.add_argument("--pool", default="{}", help="JSON merged into the server's pool settings")
    parser.add_argument("--tree", help="run the server from this checkout (a before/after comparison)")
    parser.add_argument("--zipf", type=float, default=0.0, help="skew of the projects (0: every one alike)")
    parser.add_argument("--out", default="mixed.json")
    parser.add_argument("--stop-rounds", type=int, default=0, help="only the stop-then-ask side-by-side")
    parser.add_argument("--plot", nargs=2, metavar=("AFTER", "BEFORE"), help="plot two reports, run nothing")
    parser.add_argument("--plot-paths", nargs="+", metavar="LABEL=REPORT", help="p50 per path of reports")
    parser.add_argument("--plot-shares", nargs="+", metavar="LABEL=REPORT", help="paths and throughput of reports")
    parser.add_argument("--plot-out", default="perf-mixed-paths.png", help="file name in docs/ for a plot")
    args = parser.parse_args()
    if args.plot_shares:
        labelled = (item.split("=", 1) for item in args.plot_shares)
        reports = {label: json.loads(Path(name).read_text()) for label, name in labelled}
        return 0 if plot_shares(reports, DOCS / args.plot_out) else 1
    if args.plot_paths:
        labelled = (item.split("=", 1) for item in args.plot_paths)
        series = {label: path_p50s(json.loads(Path(name).read_text())) for label, name in labelled}
        return 0 if plot(series, DOCS / args.plot_out) else 1
    if args.plot:
        after, before = (json.loads(Path(name).read_text()) for name in args.plot)
        series = {"proxy": p50s(after, "proxy"), "proxy before": p50s(before, "proxy"), "cold": p50s(after, "cold")}
        return 0 if plot(series, DOCS / "perf-mixed.png") else 1
    if args.tree:
        server_module.REPO = Path(args.tree).resolve()
    binary = ensure_cli()
    upstream: ScriptedUpstream | UpstreamProcess = (
        UpstreamProcess() if args.upstream_process and not args.stop_rounds else ScriptedUpstream().start()
    )
    workdir = Path(tempfile.mkdtemp(prefix="claude-proxy-mixed-"))
    server = RunningServer(
        workdir / "server",
        cli=binary,
        upstream_url=upstream.url,
        config={
            "pool": {**SERVER_POOL, **json.loads(args.pool)},
            "batches": {"concurrency": args.batch_concurrency, "poll_s": 0.05},
            "claude": {"env": dict(item.split("=", 1) for item in args.claude_env)},
            "server": {"log_level": "warning"},
        },
    ).start()
    try:
        if args.stop_rounds and isinstance(upstream, ScriptedUpstream):
            script_upstream(upstream)
            print(json.dumps(stop_then_ask(server, args.stop_rounds), indent=2))  # noqa: T201
            return 0
        report = run(
            server,
            Cold(binary, upstream.url, workdir),
            upstream,
            scripts=args.scripts,
            cold_scripts=args.cold_scripts,
            zipf=args.zipf,
            warmup=args.warmup,
            concurrency=args.concurrency,
        )
    finally:
        server.stop()
        upstream.stop()
    report["orphans_after_stop"] = orphans(report.pop("cli_pids_seen"))
    report["tree"] = args.tree or "this checkout"
    report["pool_settings"] = {**SERVER_POOL, **json.loads(args.pool)}
    report["claude_env"] = args.claude_env
    out = Path(__file__).resolve().parent / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))  # noqa: T201 - the benchmark's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
