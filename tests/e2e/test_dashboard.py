"""The dashboard end to end: the real server and the real CLI (in subscription mode, so the plan's
windows arrive), a real OpenAI client sending traffic, and headless Chromium reading /ui."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import openai
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import console_errors, headless_chromium
from tests.support.server import ADMIN_KEY, RunningServer
from tests.support.upstream import Reply, plan_headers

pytestmark = pytest.mark.e2e

OAUTH_TOKEN = "oauth-token-for-the-dashboard-e2e"


@pytest.fixture()
def plan_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(
        {"claude": {"bare": False}, "pool": {"size": 2, "spares": 1}}, name="dashboard", oauth_token=OAUTH_TOKEN
    )


@pytest.fixture()
def chromium() -> Iterator[Chrome]:
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver: Chrome, element_id: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = driver.find_element(By.ID, element_id).text
        if text in seen:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in #{element_id} within {timeout}s: {seen!r}")


def test_the_dashboard_shows_real_traffic_the_plan_and_the_pool(plan_server, upstream, chromium):
    now = int(time.time())
    headers = plan_headers(
        status="allowed_warning",
        five_hour=(0.64, now + 2 * 3600, "allowed_warning"),
        seven_day=(0.2, now + 3 * 86400, "allowed"),
    )
    upstream.on("dashboard-probe", Reply(text="seen on the dashboard", plan_headers=headers))

    chromium.get(plan_server.url + "/ui")
    chromium.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_KEY, Keys.ENTER)
    _wait_for_text(chromium, "projects-rows", "test-project")
    chromium.execute_script("window.__samePage = true")

    client = openai.OpenAI(base_url=plan_server.base_url, api_key=plan_server.api_key, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "dashboard-probe"}]
    )
    assert reply.choices[0].message.content == "seen on the dashboard"
    assert len(upstream.requests_matching("dashboard-probe")) == 1

    plan = _wait_for_text(chromium, "plan-rows", "64%")
    assert "5-hour" in plan and "7-day" in plan and "20%" in plan
    recent = _wait_for_text(chromium, "recent-rows", "test-project")
    assert "gpt-4o-mini" in recent
    assert "dashboard-probe" not in chromium.page_source  # figures only, never the prompt
    assert "seen on the dashboard" not in chromium.page_source  # nor the answer
    pool = chromium.find_element(By.ID, "pool-stats").text
    assert "Busy\n" in pool and "Idle\n" in pool and "Spare\n" in pool
    assert chromium.execute_script("return window.__samePage") is True
    assert console_errors(chromium) == []
