"""The dashboard at /ui in a real headless Chromium: login, live updates, actions, escaping, headers.

The app runs in-process on a real port with a scripted backend (tests/support/browser.py);
traffic is sent by httpx with project keys, as any client would, while the page stays open.
Each page and section is saved as a screenshot under .cache/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from budgets.database import open_database
from budgets.keys import KeyStore, Project
from budgets.ledger import LedgerEntry, UsageLedger
from core.types import BackendEvent, CompletionJob
from proxy.app import create_app
from proxy.settings import load_settings
from proxy.ui.session import COOKIE_NAME
from tests.support.browser import SCREENSHOTS, InProcessServer, console_errors, headless_chromium
from tests.support.fake_backend import FakeBackend

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

ADMIN_KEY = "admin-key-for-browser-tests"
XSS = "<img src=x onerror=alert(1)>"
NOW = time.time()
POOL = {
    "size": 4,
    "busy": 1,
    "spares": 1,
    "warm": 2,
    "warm_hits": 7,
    "reuse_hits": 3,
    "rewind_hits": 0,
    "starting": 0,
    "queued": 2,
    "queued_batch": 1,
    "max_queue": 16,
    "processes": 4,
    "started_total": 9,
    "failed_total": 0,
}


class PoolBackend(FakeBackend):
    """The scripted backend, reporting a CLI pool's figures and a plan's windows; jobs of the
    project `held` wait until `release` is set, so a batch can be seen (and cancelled) running."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "pool": POOL}

    def stream(self, job: CompletionJob) -> AsyncIterator[BackendEvent]:
        if job.owner == "held":
            return self._held(job)
        return super().stream(job)

    async def _held(self, job: CompletionJob) -> AsyncIterator[BackendEvent]:
        await asyncio.to_thread(self.release.wait)
        async for event in super().stream(job):
            yield event


class Dashboard:
    def __init__(self, server: InProcessServer, storage: str, backend: PoolBackend) -> None:
        self.server = server
        self.backend = backend
        self.url = server.url
        self.storage = storage
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def key_for(self, project: str, **fields: Any) -> str:
        db = open_database(self.storage)
        try:
            keys = KeyStore(db)
            keys.upsert_project(Project(name=project, **fields))
            secret, _ = keys.create_key(project)
        finally:
            db.close()
        return secret

    def chat(self, key: str, model: str = "gpt-4o-mini") -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
        return self.http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def _insert_hostile_names(storage: str) -> None:
    """A project, a key prefix and a model named like HTML, written past the name rules (as an
    older version or a hand-edited database might hold them): the page must still show text."""
    db = open_database(storage)
    try:
        KeyStore(db)
        db.execute("insert into projects (name, budget_period, created_at) values (?, 'total', ?)", [XSS, NOW])
        db.execute(
            "insert into api_keys (project, prefix, key_hash, created_at) values (?, ?, 'x', ?)", [XSS, XSS, NOW]
        )
        db.conn.commit()
        UsageLedger(db).record(
            LedgerEntry(
                request_id="req_xss",
                project=XSS,
                key_prefix=XSS,
                requested_model=XSS,
                resolved_model=XSS,
                prompt_tokens=5,
                completion_tokens=3,
                cost_usd=0.5,
                latency_ms=120,
                created_at=NOW - 5,
            )
        )
    finally:
        db.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    storage = str(tmp_path_factory.mktemp("dashboard") / "data")
    settings = load_settings(
        None,
        environ={},
        overrides={"storage.path": storage, "auth.admin_key": ADMIN_KEY, "auth.max_failures_per_minute": 1000},
    )
    backend = PoolBackend()
    backend.plan_accounts = [
        {
            "name": "default",
            "status": "warning",
            "windows": {
                "five_hour": {"utilization": 0.72, "resets_at": int(NOW) + 2 * 3600 + 600, "status": "allowed_warning"},
                "seven_day": {"utilization": 0.3, "resets_at": int(NOW) + 3 * 86400, "status": "allowed"},
            },
        }
    ]
    db = open_database(storage)
    KeyStore(db).upsert_project(Project(name="acme", budget_usd=5.0, budget_period="monthly", rpm=60, tpm=100_000))
    db.close()
    _insert_hostile_names(storage)
    server = InProcessServer(settings, backend).start()
    try:
        yield Dashboard(server, storage, backend)
    finally:
        backend.release.set()
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chrome]:
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def browser(chromium: Chrome, dashboard: Dashboard) -> Iterator[Chrome]:
    """The browser, logged out, its console checked for errors after the test."""
    # A blank page stops the last test's polling; no page of the server, since a document without
    # an icon link (an SVG opened directly) makes Chromium ask for /favicon.ico, a 404 whose
    # console error can arrive late, in the next test.
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    console_errors(chromium)
    yield chromium
    assert console_errors(chromium) == []


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Polls `condition` until it returns something truthy; fails with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page is still changing under the query
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


def screenshot(driver: Chrome, name: str, element: WebElement | None = None) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    if element is not None:
        driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(str(target))
    else:
        driver.save_screenshot(str(target))


def log_in(driver: Chrome, dashboard: Dashboard, key: str = ADMIN_KEY) -> None:
    driver.get(dashboard.url + "/ui")
    field = driver.find_element(By.CSS_SELECTOR, "input[type=password]")
    field.send_keys(key, Keys.ENTER)  # Enter submits the form


def project_row(driver: Chrome, name: str) -> WebElement | None:
    for row in driver.find_elements(By.CSS_SELECTOR, "#projects-rows tr"):
        if row.find_element(By.TAG_NAME, "th").text == name:
            return row
    return None


def cell_text(row: WebElement, index: int) -> str:
    return row.find_elements(By.CSS_SELECTOR, "th, td")[index].text


def test_a_wrong_key_stays_on_the_login_page_with_an_error_and_shows_nothing(browser: Chrome, dashboard: Dashboard):
    browser.get(dashboard.url + "/ui")
    screenshot(browser, "login")
    log_in(browser, dashboard, "not-the-admin-key")
    error = wait_for(lambda: browser.find_element(By.ID, "login-error"))
    assert error.text == "That is not the admin key."
    assert browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
    assert browser.find_elements(By.ID, "projects") == []
    assert "acme" not in browser.page_source
    assert browser.get_cookie(COOKIE_NAME) is None
    screenshot(browser, "login-wrong-key")


def test_the_admin_key_logs_in_with_a_strict_httponly_expiring_cookie(browser: Chrome, dashboard: Dashboard):
    log_in(browser, dashboard)
    wait_for(lambda: project_row(browser, "acme"))
    cookie = browser.get_cookie(COOKIE_NAME)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert NOW + 3600 < cookie["expiry"] <= time.time() + 12 * 3600 + 60
    assert COOKIE_NAME not in browser.execute_script("return document.cookie")
    # Logging out ends the session: the page is the login page again.
    browser.find_element(By.XPATH, "//button[text()='Log out']").click()
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "input[type=password]"))
    assert browser.get_cookie(COOKIE_NAME) is None


def test_traffic_shows_in_the_overview_projects_and_recent_requests_without_a_reload(
    browser: Chrome, dashboard: Dashboard
):
    log_in(browser, dashboard)
    wait_for(lambda: project_row(browser, "acme"))
    browser.execute_script("window.__stillTheSamePage = 42")
    # A project created after the page loaded, and its traffic.
    key = dashboard.key_for("traffic")
    for _ in range(3):
        assert dashboard.chat(key).status_code == 200

    row = wait_for(lambda: project_row(browser, "traffic"))
    wait_for(lambda: cell_text(row, 1) == "3")
    assert cell_text(row, 2) == "414"  # 3 x (131 prompt + 7 completion) tokens, as the fake reports them
    wait_for(lambda: "traffic" in browser.find_element(By.ID, "chart-requests-day").text)
    legend = browser.find_element(By.ID, "chart-requests-day").text
    assert "traffic: 3" in legend
    recent = browser.find_elements(By.CSS_SELECTOR, "#recent-rows tr")
    assert [cell.text for cell in recent[0].find_elements(By.TAG_NAME, "td")][1:3] == ["traffic", "gpt-4o-mini"]
    assert int(browser.find_element(By.CSS_SELECTOR, '[data-stat="requests_today"]').text) >= 3
    assert browser.execute_script("return window.__stillTheSamePage") == 42
    # The recent requests never carry what was asked or answered.
    assert "Hello world" not in browser.page_source


def test_a_key_created_on_the_page_works_until_it_is_revoked_there(browser: Chrome, dashboard: Dashboard):
    dashboard.key_for("keys-demo")
    log_in(browser, dashboard)
    wait_for(lambda: project_row(browser, "keys-demo"))
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Create a key for keys-demo']").click()
    shown = wait_for(lambda: browser.find_element(By.ID, "new-key-value").text)
    assert browser.find_element(By.ID, "new-key-project").text == "keys-demo"
    assert dashboard.chat(shown).status_code == 200
    prefix = shown[:12]
    revoke = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f"button[aria-label='Revoke key {prefix}']"))
    screenshot(browser, "new-key", browser.find_element(By.ID, "projects"))
    revoke.click()
    assert revoke.text == "Confirm revoke"
    revoke.click()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, f"button[aria-label='Revoke key {prefix}']"))
    assert dashboard.chat(shown).status_code == 401
    browser.find_element(By.ID, "new-key-dismiss").click()
    assert not browser.find_element(By.ID, "new-key").is_displayed()


def test_a_budget_set_on_the_page_shows_as_a_bar_of_the_spend(browser: Chrome, dashboard: Dashboard):
    key = dashboard.key_for("budgeted")
    assert dashboard.chat(key).status_code == 200
    log_in(browser, dashboard)
    row = wait_for(lambda: project_row(browser, "budgeted"))
    field = row.find_element(By.CSS_SELECTOR, "input[name=budget_usd]")
    field.clear()
    field.send_keys("0.01", Keys.ENTER)
    meter = row.find_element(By.TAG_NAME, "meter")
    wait_for(lambda: meter.is_displayed() and float(meter.get_property("max")) == 0.01)
    spent = float(meter.get_property("value"))
    assert 0 < spent < 0.01
    assert re.fullmatch(r"\$0\.0001 of \$0\.0100", cell_text(row, 3).splitlines()[0])
    listed = dashboard.http.get("/admin/projects/budgeted", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert listed.json()["budget_usd"] == 0.01


def test_names_that_look_like_html_show_as_text_and_run_nothing(browser: Chrome, dashboard: Dashboard):
    log_in(browser, dashboard)
    row = wait_for(lambda: project_row(browser, XSS))
    assert XSS in row.find_element(By.CSS_SELECTOR, ".keys").text  # the key prefix
    wait_for(lambda: any(XSS in r.text for r in browser.find_elements(By.CSS_SELECTOR, "#recent-rows tr")))
    assert XSS in browser.find_element(By.ID, "chart-spend-month").text
    assert browser.find_elements(By.CSS_SELECTOR, "main img, header img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    screenshot(browser, "xss-as-text", browser.find_element(By.ID, "projects"))


def start_batch(dashboard: Dashboard, project: str, lines: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A batch of `lines` chat requests of a new key of `project`; the batch and that key's headers."""
    key = dashboard.key_for(project)
    body = "".join(
        json.dumps(
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            }
        )
        + "\n"
        for i in range(lines)
    )
    headers = {"Authorization": f"Bearer {key}"}
    uploaded = dashboard.http.post(
        "/v1/files", headers=headers, data={"purpose": "batch"}, files={"file": ("in.jsonl", body.encode())}
    )
    assert uploaded.status_code == 200, uploaded.text
    batch = dashboard.http.post(
        "/v1/batches",
        headers=headers,
        json={"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    assert batch.status_code == 200, batch.text
    return batch.json(), headers


def batch_row(driver: Chrome, batch_id: str, status: str) -> WebElement | None:
    for row in driver.find_elements(By.CSS_SELECTOR, "#batches-rows tr"):
        if batch_id in row.text and status in row.text:
            return row
    return None


def test_plan_windows_pool_and_batches_are_shown(browser: Chrome, dashboard: Dashboard):
    batch, _ = start_batch(dashboard, "batcher", 3)
    log_in(browser, dashboard)

    plan = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#plan-rows tr"))
    first = [cell.text for cell in plan[0].find_elements(By.CSS_SELECTOR, "th, td")]
    assert first[:3] == ["default", "5-hour", "72%"]
    assert re.fullmatch(r"2 h (9|10) min", first[3])
    pool = browser.find_element(By.ID, "pool-stats").text
    for words in ("Busy\n1", "Idle\n3", "Warm\n2", "Spare\n1", "Queued\n3", "Warm hits\n7", "Reuse hits\n3"):
        assert words in pool

    shares = browser.find_element(By.ID, "plan-shares").text
    assert re.search(r"Last 7 days\n.*traffic (<1|\d+)%", shares)
    row = wait_for(lambda: batch_row(browser, batch["id"], "completed"))
    bar = row.find_element(By.TAG_NAME, "progress")
    assert float(bar.get_property("value")) == float(bar.get_property("max")) == 3
    assert "3 of 3" in row.text
    assert not row.find_element(By.CSS_SELECTOR, "button.cancel").is_displayed()


def test_a_running_batch_is_cancelled_from_the_page(browser: Chrome, dashboard: Dashboard):
    batch, headers = start_batch(dashboard, "held", 2)
    log_in(browser, dashboard)
    row = wait_for(lambda: batch_row(browser, batch["id"], "in progress"))
    cancel = row.find_element(By.CSS_SELECTOR, "button.cancel")
    assert cancel.get_attribute("aria-label") == f"Cancel batch {batch['id']}"
    cancel.click()
    wait_for(lambda: batch_row(browser, batch["id"], "cancelling"))
    dashboard.backend.release.set()  # the running lines finish; the batch ends cancelled
    row = wait_for(lambda: batch_row(browser, batch["id"], "cancelled"))
    assert not row.find_element(By.CSS_SELECTOR, "button.cancel").is_displayed()
    retrieved = dashboard.http.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert retrieved["status"] == "cancelled"


def test_screenshots_of_every_section_in_light_and_dark(browser: Chrome, dashboard: Dashboard):
    """Runs after the tests above have filled every section (pytest keeps the file's order)."""
    log_in(browser, dashboard)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#batches-rows tr"))
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#recent-rows tr"))
    screenshot(browser, "dashboard")
    for section in ("overview", "projects", "plan", "pool", "batches", "recent"):
        screenshot(browser, f"section-{section}", browser.find_element(By.ID, section))
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    try:
        browser.execute_script("window.scrollTo(0, 0)")
        background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(24, 23, 22)"  # the dark palette's --bg
        screenshot(browser, "dashboard-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_the_page_can_be_used_from_the_keyboard(browser: Chrome, dashboard: Dashboard):
    log_in(browser, dashboard)
    wait_for(lambda: project_row(browser, "acme"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    body = browser.switch_to.active_element
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Overview"
    browser.switch_to.active_element.send_keys(Keys.TAB, Keys.TAB, Keys.ENTER)  # the "Claude plan" link
    assert browser.current_url.endswith("#plan")
    # Every control of a project row is reachable with Tab: they are buttons and inputs, not divs.
    row = project_row(browser, "acme")
    assert row is not None
    controls = row.find_elements(By.CSS_SELECTOR, "button, input, select")
    assert controls and all(c.get_property("tabIndex") == 0 for c in controls)


def test_every_ui_response_has_the_csp_and_actions_need_the_csrf_token_and_origin(dashboard: Dashboard):
    http = httpx.Client(base_url=dashboard.url)
    responses = [http.get("/ui"), http.post("/ui/login", data={"key": "wrong"}), http.get("/ui/api/live")]
    logged_in = http.post("/ui/login", data={"key": ADMIN_KEY})
    assert logged_in.status_code == 303
    page = http.get("/ui")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    responses += [logged_in, page, http.get("/ui/api/overview"), http.get("/ui/static/dashboard.js")]
    responses += [http.get("/ui/static/dashboard.css"), http.get("/ui/static/nothing.js")]
    for response in responses:
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
    assert [r.status_code for r in responses[:3]] == [200, 200, 401]
    # The page has no inline script: every <script> has a src.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []

    action = "/ui/api/projects/acme/keys"
    assert http.post(action).status_code == 403  # no token
    assert http.post(action, headers={"X-CSRF-Token": "forged"}).status_code == 403
    cross = {"X-CSRF-Token": token.group(1), "Origin": "https://evil.example"}
    assert http.post(action, headers=cross).status_code == 403
    same = {"X-CSRF-Token": token.group(1), "Origin": dashboard.url}
    created = http.post(action, headers=same)
    assert created.status_code == 200 and created.json()["project"] == "acme"
    # A token belongs to its session: another session's token is refused.
    other = httpx.Client(base_url=dashboard.url)
    other.post("/ui/login", data={"key": ADMIN_KEY})
    assert other.post(action, headers=same).status_code == 403


def test_without_an_admin_key_there_is_no_dashboard(tmp_path):
    settings = load_settings(None, environ={}, overrides={"storage.path": str(tmp_path)})
    with TestClient(app=create_app(settings, backend=FakeBackend())) as client:
        assert client.get("/ui").status_code == 404
        assert client.get("/ui/static/dashboard.js").status_code == 404
        assert client.post("/ui/login", data={"key": "anything"}).status_code == 404
