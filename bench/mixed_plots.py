"""Plots of the mixed workload's reports (`python -m bench.mixed --plot…`), drawn when
matplotlib is installed (`make bench` installs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The pool's counters of the process paths, in the order the plots stack them.
PATHS = ("warm_hits", "rewind_hits", "reuse_hits", "spare_hits", "new_hits")


def plot(series: dict[str, dict[str, float]], path: Path) -> bool:
    """A bar per side for each workload's p50 (`series`: side -> workload -> seconds), written to
    `path` when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    kinds = sorted({kind for values in series.values() for kind in values})
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(series)
    for n, (side, values) in enumerate(series.items()):
        xs = [i + n * width for i in range(len(kinds))]
        ax.bar(xs, [values.get(kind, 0.0) for kind in kinds], width, label=side)
    ax.set_yscale("log")
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(kinds))])
    ax.set_xticklabels([kind.replace("_", " ") for kind in kinds], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("p50 latency (s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def plot_shares(reports: dict[str, dict[str, Any]], path: Path) -> bool:
    """A stacked bar per report: how many requests in 100 each path served, with the throughput
    ratio to the cold side on top, written to `path` when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = list(reports)
    bottoms = [0.0] * len(labels)
    for name in PATHS:
        values = [reports[label]["paths_per_100_requests"][name] for label in labels]
        ax.bar(labels, values, bottom=bottoms, label=name.removesuffix("_hits"))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for x, label in enumerate(labels):
        ratio = reports[label]["throughput_rps"]["ratio"]
        ax.annotate(f"{ratio:.1f}x cold", (x, bottoms[x]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("requests in 100, by process path")
    ax.set_ylim(0, max(bottoms) * 1.12)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def p50s(report: dict[str, Any], side: str) -> dict[str, float]:
    return {kind: v[side]["p50"] for kind, v in report["latency_s"].items() if v.get(side)}
