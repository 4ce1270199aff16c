"""proxy.plan_gate.PlanGate over fake accounts, and batch lines and background responses held by
it in the app (the fake backend's `accounts()`), while chat completions pass."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from proxy.plan_gate import WAIT_REASON, PlanGate
from tests.unit.test_app_routes import Proxy, make_proxy  # noqa: F401 - the fixture
from tests.unit.test_responses_routes import create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

NOW = 1_800_000_000.0
DEADLINE_S = 10.0


def account(name: str, **windows: tuple[float | None, int | None, str]) -> dict[str, Any]:
    return {
        "name": name,
        "status": "ok",
        "windows": {
            window: {"utilization": use, "resets_at": reset, "status": status}
            for window, (use, reset, status) in windows.items()
        },
    }


def gate(accounts: list[dict[str, Any]], now: float = NOW) -> PlanGate:
    return PlanGate(lambda: accounts, 0.8, clock=lambda: now)


def test_no_account_known_never_waits() -> None:
    assert gate([]).wait() is None
    assert gate([account("default")]).wait() is None  # known, but no window seen yet


def test_one_account_above_the_threshold_waits_until_its_window_resets() -> None:
    reset = int(NOW) + 60
    accounts = [account("default", five_hour=(0.9, reset, "allowed_warning"), seven_day=(0.3, reset + 9, "allowed"))]
    waiting = gate(accounts).wait()
    assert waiting is not None
    assert (waiting.reason, waiting.resumes_at) == (WAIT_REASON, reset)
    assert "80%" in waiting.message and "default" in waiting.message
    assert gate(accounts, now=reset).wait() is None  # the window reset


def test_at_the_threshold_is_not_above_it() -> None:
    assert gate([account("default", five_hour=(0.8, int(NOW) + 60, "allowed"))]).wait() is None


def test_a_rejected_window_waits_whatever_its_utilization_says() -> None:
    accounts = [account("default", seven_day=(None, int(NOW) + 600, "rejected"))]
    waiting = gate(accounts).wait()
    assert waiting is not None and waiting.resumes_at == int(NOW) + 600


def test_one_account_with_room_keeps_the_gate_open() -> None:
    full = account("alice", five_hour=(0.95, int(NOW) + 60, "allowed_warning"))
    roomy = account("bob", five_hour=(0.2, int(NOW) + 60, "allowed"))
    assert gate([full, roomy]).wait() is None


def test_every_account_full_resumes_at_the_first_account_that_frees_up() -> None:
    # alice frees up when both her full windows reset (t+300); bob at t+120.
    alice = account("alice", five_hour=(0.9, int(NOW) + 100, "allowed"), seven_day=(0.85, int(NOW) + 300, "allowed"))
    bob = account("bob", five_hour=(0.99, int(NOW) + 120, "allowed_warning"))
    waiting = gate([alice, bob]).wait()
    assert waiting is not None and waiting.resumes_at == int(NOW) + 120
    assert "alice, bob" in waiting.message


def test_a_full_window_without_a_reset_time_waits_for_news() -> None:
    waiting = gate([account("default", five_hour=(0.9, None, "allowed"))]).wait()
    assert waiting is not None and waiting.resumes_at is None


def test_wait_open_returns_once_the_window_resets() -> None:
    clock = [NOW]
    accounts = [account("default", five_hour=(0.9, int(NOW) + 2, "allowed"))]
    waiter = PlanGate(lambda: accounts, 0.8, poll_s=0.01, clock=lambda: clock[0])

    async def scenario() -> bool:
        task = asyncio.create_task(waiter.wait_open())
        await asyncio.sleep(0.05)
        still_waiting = not task.done()
        clock[0] = NOW + 2
        await asyncio.wait_for(task, timeout=DEADLINE_S)
        return still_waiting

    assert asyncio.run(scenario()) is True


def _full_for(seconds: float) -> list[dict[str, Any]]:
    reset = int(time.time() + seconds)
    return [account("default", five_hour=(0.93, reset, "allowed_warning"), seven_day=(0.4, reset + 3600, "allowed"))]


def _until(get, done, what: str) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        answer = get()
        if done(answer):
            return answer
        time.sleep(0.01)
    raise AssertionError(f"{what}: still {answer}")


def _start_batch(proxy: Proxy) -> str:
    line = {
        "custom_id": "line-0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "batch question"}]},
    }
    upload = proxy.client.post(
        "/v1/files",
        files={"file": ("input.jsonl", (json.dumps(line) + "\n").encode())},
        data={"purpose": "batch"},
        headers=proxy.headers,
    )
    assert upload.status_code == 200, upload.text
    body = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    created = proxy.post("/v1/batches", body)
    assert created.status_code == 200, created.text
    return created.json()["id"]


def test_a_batch_waits_above_the_threshold_shows_why_and_runs_after_the_reset(make_proxy) -> None:  # noqa: F811
    proxy = make_proxy(**{"batches.poll_s": 0.05})
    proxy.backend.plan_accounts = _full_for(3600)
    batch_id = _start_batch(proxy)
    waiting = _until(lambda: proxy.get(f"/v1/batches/{batch_id}").json(), lambda b: "waiting" in b, "no waiting")
    assert waiting["status"] == "in_progress"
    assert waiting["waiting"]["reason"] == WAIT_REASON
    assert waiting["waiting"]["resumes_at"] == proxy.backend.plan_accounts[0]["windows"]["five_hour"]["resets_at"]
    listed = proxy.get("/v1/batches").json()["data"]
    assert listed[0]["waiting"] == waiting["waiting"]
    # Interactive requests are not held.
    chat = proxy.chat()
    assert chat.status_code == 200, chat.text
    assert [job.prompt[0].text for job in proxy.backend.jobs] == ["Hi"]  # no batch line ran

    proxy.backend.plan_accounts = _full_for(-1)  # the window has reset
    done = _until(lambda: proxy.get(f"/v1/batches/{batch_id}").json(), lambda b: b["status"] == "completed", "batch")
    assert "waiting" not in done
    assert done["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
    assert sorted(job.prompt[0].text for job in proxy.backend.jobs) == ["Hi", "batch question"]


def test_a_background_response_stays_queued_above_the_threshold(make_proxy) -> None:  # noqa: F811
    proxy = make_proxy(**{"batches.poll_s": 0.05})
    proxy.backend.plan_accounts = _full_for(3600)
    queued = ok(create(proxy, input="background question", background=True))
    assert queued["status"] == "queued"
    assert proxy.chat().status_code == 200
    time.sleep(0.2)  # a few polls of the gate: it must still hold the response
    held = proxy.get(f"/v1/responses/{queued['id']}").json()
    assert held["status"] == "queued"
    assert len(proxy.backend.jobs) == 1

    proxy.backend.plan_accounts = _full_for(-1)
    done = _until(
        lambda: proxy.get(f"/v1/responses/{queued['id']}").json(), lambda r: r["status"] == "completed", "response"
    )
    assert done["output"][0]["content"][0]["text"] == "Hello world"
    assert len(proxy.backend.jobs) == 2
