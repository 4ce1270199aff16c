"""Side-by-side benchmark: the proxy against a cold `claude -p` per request, in one run.

Run with `make bench` (or `.venv/bin/python -m bench.run`). Both sides drive the same pinned CLI
against the same scripted local upstream, which answers at once, so what is measured is the cost
of the proxy and of the CLI itself. Results go to `bench/results/latest.json` and, with
matplotlib installed, `docs/perf-*.png`; `docs/performance.md` discusses one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import mixed, responses
from bench.measure import (
    cache_load,
    interleaved,
    percentiles,
    rss_mb,
    throughput,
    tree_cpu_seconds,
    wrk_cache_load,
)
from bench.sides import Cold, Direct, Proxy, agent_loop, batch_run, flattened, new_tools
from tests.support.cli import ensure_cli
from tests.support.server import RunningServer, descendants
from tests.support.upstream import Reply, ScriptedUpstream

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15, help="requests per latency sample")
    parser.add_argument("--quick", action="store_true", help="a short run, for a smoke test")
    args = parser.parse_args()
    rounds = 4 if args.quick else args.rounds
    binary = ensure_cli()
    upstream = ScriptedUpstream().start()
    workdir = Path(tempfile.mkdtemp(prefix="claude-proxy-bench-"))
    server = RunningServer(
        workdir / "server",
        cli=binary,
        upstream_url=upstream.url,
        config={
            "pool": {"size": 8, "spares": 2, "warm_max": 8, "spare_model": "haiku", "max_queue": 64},
            "cache": {"enabled": True},
            "batches": {"concurrency": 4, "poll_s": 0.05},
            "server": {"log_level": "warning"},
        },
    ).start()
    cold, proxy = Cold(binary, upstream.url, workdir), Proxy(server)
    report: dict[str, Any] = {"cli": binary.name, "rounds": rounds}
    try:
        proxy.run([{"role": "user", "content": "warm up"}])
        time.sleep(1.0)  # let the pool start its spares before measuring
        cpu_before, children_before = tree_cpu_seconds(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)

        def paced_proxy(i: int) -> float:
            elapsed = proxy.run([{"role": "user", "content": f"one-shot {i}"}])
            time.sleep(0.3)  # as between a user's requests: spares have time to refill
            return elapsed

        proxy_one, cold_one = interleaved(rounds, paced_proxy, lambda i: cold.run(f"one-shot cold {i}"))
        report["one_shot_s"] = {"proxy": percentiles(proxy_one), "cold": percentiles(cold_one)}
        report["one_shot_ratio_p50"] = report["one_shot_s"]["proxy"]["p50"] / report["one_shot_s"]["cold"]["p50"]

        proxy_cpu = (tree_cpu_seconds(server.proc.pid) - cpu_before) / rounds
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cold_cpu = ((after.ru_utime + after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)) / rounds
        report["cpu_s_per_request"] = {"proxy_incl_cli": proxy_cpu, "cold": cold_cpu}

        # The same one-shot requests sent straight to one stream-json CLI, emptied by a rewind
        # before each, as the pool does: what is left above it is the proxy's own time.
        direct = Direct(binary, upstream.url, workdir)
        try:
            direct_one = [direct.run(f"one-shot direct {i}") for i in range(rounds)]
        finally:
            direct.close()
        report["one_shot_s"]["direct_cli"] = percentiles(direct_one)
        report["proxy_overhead_ms_p50"] = (report["one_shot_s"]["proxy"]["p50"] - percentiles(direct_one)["p50"]) * 1000

        # Every request brings a system prompt never seen before: an idle process of the
        # project switches to it (`set_model` with `system_prompt`) after the rewind.
        def paced_new_prompt(i: int) -> float:
            elapsed = proxy.run(
                [{"role": "system", "content": f"new prompt {i}"}, {"role": "user", "content": f"one-shot {i}"}]
            )
            time.sleep(0.3)
            return elapsed

        proxy_new, cold_new = interleaved(rounds, paced_new_prompt, lambda i: cold.run(f"one-shot new cold {i}"))
        report["one_shot_new_prompt_s"] = {"proxy": percentiles(proxy_new), "cold": percentiles(cold_new)}
        report["one_shot_new_prompt_ratio_p50"] = percentiles(proxy_new)["p50"] / percentiles(cold_new)["p50"]

        # Every request offers a tool set never seen before: no idle process can take it (tools
        # are fixed at start), so each takes a spare, or starts a process when none is ready.
        def paced_new_setup(i: int) -> float:
            elapsed = proxy.run([{"role": "user", "content": f"one-shot {i}"}], tools=new_tools(f"setup_{i}"))
            time.sleep(0.3)  # spares have time to refill
            return elapsed

        proxy_setup, cold_setup = interleaved(rounds, paced_new_setup, lambda i: cold.run(f"one-shot setup cold {i}"))
        report["one_shot_new_setup_s"] = {"proxy": percentiles(proxy_setup), "cold": percentiles(cold_setup)}
        report["one_shot_new_setup_ratio_p50"] = percentiles(proxy_setup)["p50"] / percentiles(cold_setup)["p50"]

        proxy_ttft, cold_ttft = interleaved(
            rounds,
            lambda i: (proxy.first_token(f"ttft {i}"), time.sleep(0.3))[0],
            lambda i: cold.first_token(f"ttft cold {i}"),
        )
        report["ttft_s"] = {"proxy": percentiles(proxy_ttft), "cold": percentiles(cold_ttft)}

        # Conversations as clients hold them: each request resends the history, with the replies
        # it got, plus one new user message. The baseline gets the same history flattened.
        by_turn: dict[int, dict[str, list[float]]] = {t: {"proxy": [], "cold": []} for t in range(1, 11)}
        for conv in range(max(rounds // 5, 2)):
            messages: list[dict[str, str]] = []
            for turn in range(1, 11):
                messages.append({"role": "user", "content": f"conversation {conv} question {turn}"})
                elapsed, reply = proxy.ask(messages)
                by_turn[turn]["proxy"].append(elapsed)
                by_turn[turn]["cold"].append(cold.run(flattened(messages)))
                messages.append({"role": "assistant", "content": reply})
        report["conversation_next_turn_s"] = {
            turn: {"proxy_p50": statistics.median(v["proxy"]), "cold_p50": statistics.median(v["cold"])}
            for turn, v in by_turn.items()
            if turn >= 2
        }

        # "Regenerate": a client resends a three-turn conversation without its last answer. The
        # kept process went past that point and is cut back to it.
        regenerated, cold_regenerated = [], []
        for conv in range(rounds):
            messages = []
            for turn in range(3):
                messages.append({"role": "user", "content": f"regenerate {conv} question {turn}"})
                messages.append({"role": "assistant", "content": proxy.ask(messages)[1]})
            regenerated.append(proxy.run(messages[:-1]))
            cold_regenerated.append(cold.run(flattened(messages[:-1])))
        report["regenerate_s"] = {"proxy": percentiles(regenerated), "cold": percentiles(cold_regenerated)}

        # An agent loop: a tool call, then the request carrying its result. The baseline cannot
        # offer tools at all, so it gets two plain one-shot requests, its floor for two steps.
        upstream.on(
            "agent-loop question", Reply(chunks=[], tool_use={"name": "mcp__proxy__lookup", "input": {"q": "x"}})
        )
        loops = [agent_loop(proxy, i) for i in range(rounds)]
        cold_steps = [cold.run(f"agent cold {i} a") + cold.run(f"agent cold {i} b") for i in range(rounds)]
        report["agent_loop_s"] = {
            "proxy_loop": percentiles([whole for whole, _ in loops]),
            "proxy_result_step": percentiles([step for _, step in loops]),
            "cold_two_requests": percentiles(cold_steps),
        }
        report["agent_loop_ratio_p50"] = (
            report["agent_loop_s"]["proxy_loop"]["p50"] / report["agent_loop_s"]["cold_two_requests"]["p50"]
        )

        # The Responses API's conversations, stored and stateless (Codex-like), and its function-call step.
        report["responses"] = responses.run(proxy, cold, upstream, rounds)

        batch_lines = 8 if args.quick else 24
        seconds = batch_run(server, batch_lines)
        report["batch"] = {"lines": batch_lines, "seconds": seconds, "lines_per_s": batch_lines / seconds}

        report["throughput_rps"], report["latency_by_concurrency_s"] = {}, {}
        for concurrency in (1, 4, 8):
            total = max(rounds * 4, concurrency * 8)
            # Steady state: the first time this many requests run at once, the pool starts the
            # processes it lacks (about 1 s each under this load); a server in use has them.
            throughput(concurrency, concurrency * 2, lambda i: proxy.run([{"role": "user", "content": f"tp warm {i}"}]))
            p, p_lat = throughput(
                concurrency, total, lambda i, n=concurrency: proxy.run([{"role": "user", "content": f"tp {n} {i}"}])
            )
            c, c_lat = throughput(concurrency, total, lambda i, n=concurrency: cold.run(f"tp cold {n} {i}"))
            report["throughput_rps"][concurrency] = {"proxy": p, "cold": c, "ratio": p / c}
            report["latency_by_concurrency_s"][concurrency] = {"proxy": percentiles(p_lat), "cold": percentiles(c_lat)}
        # Throughput when no two requests share a set-up: every request needs a new process.
        total = max(rounds, 12)
        new_setups, _ = throughput(
            4, total, lambda i: proxy.run([{"role": "user", "content": f"tp new {i}"}], tools=new_tools(f"tp_{i}"))
        )
        cold_new_setups, _ = throughput(4, total, lambda i: cold.run(f"tp new cold {i}"))
        report["throughput_new_setup_c4_rps"] = {
            "proxy": new_setups,
            "cold": cold_new_setups,
            "ratio": new_setups / cold_new_setups,
        }
        # A stream dropped after its first token, then a one-shot request: the dropped stream's
        # process is interrupted and kept (bench/mixed.py).
        mixed.script_upstream(upstream)
        report["stop_then_one_shot_s"] = mixed.stop_then_ask(server, rounds)
        # Real traffic's mix, side by side with the cold baseline at concurrency 8 (bench/mixed.py).
        report["mixed"] = mixed.run(
            server, cold, upstream, scripts=12 if args.quick else 80, cold_scripts=4 if args.quick else 16
        )
        report["pool"] = server.health()["pool"]

        clis = [
            pid
            for pid in descendants(server.proc.pid)
            if "claude" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        report["rss_mb"] = {
            "server": rss_mb(server.proc.pid),
            "pooled_cli": [rss_mb(pid) for pid in clis],
            "pooled_cli_private": [rss_mb(pid, "RssAnon") for pid in clis],
        }
        report["cache_hit"] = cache_load(proxy, concurrency=8, seconds=3 if args.quick else 10)
        report["cache_hit_wrk"] = wrk_cache_load(proxy, connections=8, seconds=3 if args.quick else 10)
        overhead = []
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as client:
            for _ in range(rounds):
                response = client.post(
                    "/chat/completions",
                    json={"model": "haiku", "messages": [{"role": "user", "content": "cached benchmark question"}]},
                )
                overhead.append(float(response.headers["openai-processing-ms"]))
        report["cache_hit_processing_ms"] = percentiles(overhead)
    finally:
        server.stop()
        upstream.stop()
    if "mixed" in report:
        report["mixed"]["orphans_after_stop"] = mixed.orphans(report["mixed"].pop("cli_pids_seen"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))  # noqa: T201 - the benchmark's output
    _plots(report)
    return 0


def _plots(report: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return

    def plot(xs: list, series: dict[str, list[float]], xlabel: str, ylabel: str, name: str, log: bool = False) -> None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        if log:  # the two sides are an order of magnitude apart
            ax.set_yscale("log")
        for label, ys in series.items():
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        fig.savefig(DOCS / name, dpi=110)

    if "mixed" in report:
        mixed.plot({side: mixed.p50s(report["mixed"], side) for side in ("proxy", "cold")}, DOCS / "perf-mixed.png")
    levels = sorted(report["throughput_rps"], key=int)
    rps = report["throughput_rps"]
    plot(
        levels,
        {"proxy": [rps[k]["proxy"] for k in levels], "cold claude -p": [rps[k]["cold"] for k in levels]},
        "concurrency",
        "requests / s",
        "perf-throughput.png",
        log=True,
    )
    lat = report["latency_by_concurrency_s"]
    names = {"proxy": "proxy", "cold": "cold claude -p"}
    plot(
        levels,
        {f"{names[side]} {q}": [lat[k][side][q] for k in levels] for side in names for q in ("p50", "p99")},
        "concurrency",
        "latency (s)",
        "perf-latency.png",
        log=True,
    )
    turns = sorted(report["conversation_next_turn_s"], key=int)
    conv = report["conversation_next_turn_s"]
    plot(
        turns,
        {"proxy": [conv[t]["proxy_p50"] for t in turns], "cold claude -p": [conv[t]["cold_p50"] for t in turns]},
        "turns in the conversation",
        "median latency of the next turn (s)",
        "perf-conversation.png",
        log=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
