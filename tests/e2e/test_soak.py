"""A short soak (the long one is `python -m bench.soak`): the books balance and nothing leaks."""

from __future__ import annotations

import pytest

from bench.soak import soak

pytestmark = pytest.mark.e2e


def test_short_soak(tmp_path, cli_binary):
    report = soak(seconds=15, concurrency=8, workdir=tmp_path)
    assert sum(report["statuses"].values()) > 20
    assert report["dropped_mid_stream"] > 0
    assert report["server_5xx"] == 0
    assert set(report["statuses"]) == {200}
    assert report["cli_processes_beyond_pool"] <= 0  # no orphan: every CLI alive is one the pool knows
    assert report["reserved_usd_after"] == 0
    assert report["ledger_prompt_tokens"] == report["received_prompt_tokens"]
    assert report["rss_growth"] < 0.10
