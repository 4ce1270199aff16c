"""Each project's share of the Claude plan's windows, end to end: the real CLI in subscription
(OAuth) mode reports the windows, the ledger records the account of each request, `/v1/usage`
and the admin API show the shares, and a `plan_share` cap set with the command refuses."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.test_plan_batches import oauth_server  # noqa: F401 - the fixture
from tests.support.server import ADMIN_KEY, REPO, RunningServer
from tests.support.upstream import Reply, plan_headers

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FIVE_HOURS = 5 * 3600


def _usage(server: RunningServer, key: str) -> dict:
    answer = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_projects_share_of_the_windows_shows_and_a_cap_refuses(oauth_server, upstream):  # noqa: F811
    now = int(time.time())
    five, seven = now + 3600, now + 3 * 86400
    headers = plan_headers(five_hour=(0.6, five, "allowed"), seven_day=(0.3, seven, "allowed"))
    upstream.on("share", Reply(text="counted", plan_headers=headers))
    heavy = oauth_server.create_key("heavy")
    light = oauth_server.create_key("light")
    for text, key in (("share heavy 1", heavy), ("share heavy 2", heavy), ("share light 1", light)):
        answer = oauth_server.chat(key=key, text=text)
        assert answer.status_code == 200, answer.text

    usage = _usage(oauth_server, heavy)
    windows = {w["window"]: w for w in usage["plan_windows"]}
    assert set(windows) == {"five_hour", "seven_day"}
    five_hour = windows["five_hour"]
    assert (five_hour["account"], five_hour["resets_at"], five_hour["utilization"]) == ("default", five, 0.6)
    assert five_hour["window_start"] == five - FIVE_HOURS
    assert windows["seven_day"]["window_start"] == seven - 7 * 86400
    light_cost = _usage(oauth_server, light)["total_cost_usd"]
    assert five_hour["project_cost_usd"] == pytest.approx(usage["total_cost_usd"])
    assert five_hour["account_cost_usd"] == pytest.approx(usage["total_cost_usd"] + light_cost)
    share = usage["total_cost_usd"] / (usage["total_cost_usd"] + light_cost)
    assert 0.5 < share < 1
    assert five_hour["share"] == pytest.approx(share)
    assert five_hour["used"] == pytest.approx(share * 0.6)
    assert usage["plan_share"] is None
    admin = httpx.get(oauth_server.url + "/admin/usage/heavy", headers=ADMIN, timeout=10).json()
    assert admin["plan_windows"] == usage["plan_windows"]

    # A cap below what heavy has used of the five-hour window, set with the command.
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy",
            "keys",
            "set-budget",
            "--project",
            "heavy",
            "--plan-share",
            "0.25",
            "--config",
            str(oauth_server.config_path),
        ],
        cwd=REPO,
        env=oauth_server.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert command.returncode == 0, command.stderr
    assert "plan_share=0.25" in command.stdout
    refused = oauth_server.chat(key=heavy, text="share heavy 3")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "plan_share" in error["message"] and "5-hour" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert upstream.requests_matching("share heavy 3") == []  # refused before the CLI
    assert _usage(oauth_server, heavy)["plan_share"] == 0.25
    # Another project is not held back, and the admin API can lift the cap.
    assert oauth_server.chat(key=light, text="share light 2").status_code == 200
    lifted = httpx.patch(oauth_server.url + "/admin/projects/heavy", json={"plan_share": None}, headers=ADMIN)
    assert lifted.status_code == 200 and lifted.json()["plan_share"] is None
    assert oauth_server.chat(key=heavy, text="share heavy 4").status_code == 200
