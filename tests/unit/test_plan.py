"""The Claude plan's usage windows: the CLI's `rate_limit_event` line, the `PlanWindows` tracker,
the caller's 429 on a rejected window, and where the windows are shown."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from litestar.testing import TestClient

from adapters.claude_cli.answer import Answer
from adapters.claude_cli.events import RateLimitEventLine, RateLimitInfo, parse_line
from adapters.claude_cli.plan import PlanWindows
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.tool_bridge import ToolBridge
from budgets.database import open_database
from budgets.keys import KeyStore, Project
from core.errors import ProxyError, RateLimited
from core.types import CompletionJob, TextBlock
from proxy.app import create_app
from proxy.metrics import Metrics
from proxy.settings import load_settings
from tests.support.fake_backend import FakeBackend
from tests.unit.test_answer import FakeProcess

NOW = 1_796_126_050

# Printed by the pinned CLI (2.1.328) in OAuth mode after a 200 whose headers said five_hour
# allowed_warning at 82% and seven_day allowed at 30%.
WARNING_LINE = {
    "type": "rate_limit_event",
    "rate_limit_info": {
        "status": "allowed",
        "resetsAt": NOW + 3600,
        "rateLimitType": "five_hour",
        "isUsingOverage": False,
        "unifiedWindows": {
            "five_hour": {"utilization": 0.82, "resetsAt": NOW + 3600, "status": "allowed_warning"},
            "seven_day": {"utilization": 0.3, "resetsAt": NOW + 3 * 86400, "status": "allowed"},
        },
    },
    "uuid": "71782d64-7d12-439c-b760-7eb3d3cce953",
    "session_id": "cdea5ade-c67f-416e-93fb-851ec33e960f",
}

# ... and after a 429 whose headers said five_hour rejected (utilization is printed as 1).
REJECTED_LINE = {
    "type": "rate_limit_event",
    "rate_limit_info": {
        "status": "rejected",
        "resetsAt": NOW + 5400,
        "rateLimitType": "five_hour",
        "isUsingOverage": False,
        "unifiedWindows": {
            "five_hour": {"utilization": 1, "resetsAt": NOW + 5400, "status": "rejected"},
            "seven_day": {"utilization": 0.5, "resetsAt": NOW + 86400, "status": "allowed"},
        },
    },
    "session_id": "432094fc-9606-4f9b-ad35-8b258ba47e84",
}

REJECTED_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "api_error_status": 429,
    "api_error_type": "rate_limit_error",
    "result": "You've hit your 5-hour limit · resets 1:24pm (UTC)",
    "stop_reason": "stop_sequence",
    "session_id": "432094fc-9606-4f9b-ad35-8b258ba47e84",
}


def info(line: dict[str, Any]) -> RateLimitInfo:
    parsed = parse_line(json.dumps(line).encode())
    assert isinstance(parsed, RateLimitEventLine)
    return parsed.rate_limit_info


def test_the_cli_line_parses_with_every_window():
    parsed = info(WARNING_LINE)
    assert parsed.status == "allowed" and parsed.rateLimitType == "five_hour" and not parsed.isUsingOverage
    assert parsed.unifiedWindows["five_hour"].utilization == 0.82
    assert parsed.unifiedWindows["seven_day"].resetsAt == NOW + 3 * 86400


def test_a_bare_or_partial_line_parses_with_defaults():
    assert info({"type": "rate_limit_event"}) == RateLimitInfo()
    partial = info({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed", "newField": 1}})
    assert partial.status == "allowed" and partial.unifiedWindows == {}


def test_the_tracker_shows_windows_and_a_warning():
    plan = PlanWindows(clock=lambda: NOW)
    assert plan.accounts() == []
    plan.observe(info(WARNING_LINE))
    assert plan.accounts() == [
        {
            "name": "default",
            "status": "warning",
            "windows": {
                "five_hour": {"utilization": 0.82, "resets_at": NOW + 3600, "status": "allowed_warning"},
                "seven_day": {"utilization": 0.3, "resets_at": NOW + 3 * 86400, "status": "allowed"},
            },
        }
    ]
    assert plan.rejection() is None


def test_a_later_line_replaces_the_windows_it_names_and_keeps_the_others():
    plan = PlanWindows(clock=lambda: NOW)
    plan.observe(info(WARNING_LINE))
    only_five = json.loads(json.dumps(WARNING_LINE))
    only_five["rate_limit_info"]["unifiedWindows"] = {
        "five_hour": {"utilization": 0.1, "resetsAt": NOW + 100, "status": "allowed"}
    }
    plan.observe(info(only_five))
    [account] = plan.accounts()
    assert account["status"] == "ok"
    assert account["windows"]["five_hour"]["utilization"] == 0.1
    assert account["windows"]["seven_day"]["utilization"] == 0.3


def test_overage_and_rejected_statuses():
    plan = PlanWindows(clock=lambda: NOW)
    overage = json.loads(json.dumps(WARNING_LINE))
    overage["rate_limit_info"]["isUsingOverage"] = True
    plan.observe(info(overage))
    assert plan.accounts()[0]["status"] == "overage"
    plan.observe(info(REJECTED_LINE))
    assert plan.accounts()[0]["status"] == "rejected"


def test_a_rejected_window_gives_a_429_until_its_reset():
    plan = PlanWindows(clock=lambda: NOW)
    plan.observe(info(REJECTED_LINE))
    error = plan.rejection()
    assert isinstance(error, RateLimited)
    assert error.retry_after == 5400 and error.headers == {"Retry-After": "5400"}
    assert error.code == "rate_limit_exceeded"
    assert "5-hour limit" in error.message and "UTC" in error.message
    # Once the reset time has passed, the tracker no longer claims to know.
    assert PlanWindows(clock=lambda: NOW + 6000).rejection() is None
    later = PlanWindows(clock=lambda: NOW + 6000)
    later.observe(info(REJECTED_LINE))
    assert later.rejection() is None


def job() -> CompletionJob:
    return CompletionJob(model="claude-sonnet-5-5", system="", history=[], prompt=[TextBlock("hi")])


def test_an_answer_hands_the_line_to_the_tracker_and_a_rejection_names_the_window():
    plan = PlanWindows(clock=lambda: NOW)
    proc = FakeProcess(REJECTED_LINE, REJECTED_RESULT)
    answer = Answer(cast(CliProcess, proc), job(), ToolBridge([]), plan=plan)

    async def run() -> ProxyError | None:
        try:
            async for _ in answer.events():
                pass
        except ProxyError as exc:
            return exc
        return None

    error = asyncio.run(run())
    assert isinstance(error, RateLimited)
    assert error.retry_after == 5400
    assert "5-hour limit" in error.message
    assert plan.accounts()[0]["status"] == "rejected"


def test_a_429_without_plan_windows_keeps_the_generic_answer():
    proc = FakeProcess(REJECTED_RESULT)
    answer = Answer(cast(CliProcess, proc), job(), ToolBridge([]), plan=PlanWindows(clock=lambda: NOW))

    async def run() -> ProxyError | None:
        try:
            async for _ in answer.events():
                pass
        except ProxyError as exc:
            return exc
        return None

    error = asyncio.run(run())
    assert isinstance(error, RateLimited) and error.retry_after == 5


def test_the_metric_has_escaped_account_and_window_labels():
    plan = PlanWindows(clock=lambda: NOW)
    plan.observe(info(WARNING_LINE), account='x"} 1\nevil')
    metrics = Metrics()
    metrics.accounts = plan.accounts
    lines = [line for line in metrics.render().splitlines() if line.startswith("claude_proxy_plan_utilization")]
    assert lines == [
        'claude_proxy_plan_utilization{account="x\\"} 1\\nevil",window="five_hour"} 0.82',
        'claude_proxy_plan_utilization{account="x\\"} 1\\nevil",window="seven_day"} 0.3',
    ]


def test_admin_accounts_needs_the_admin_key_and_lists_the_backends_accounts(tmp_path):
    settings = load_settings(
        None, environ={}, overrides={"storage.path": str(tmp_path), "auth.admin_key": "admin-secret"}
    )
    db = open_database(tmp_path)
    keys = KeyStore(db)
    keys.upsert_project(Project(name="acme"))
    project_key, _ = keys.create_key("acme")
    db.close()
    backend = FakeBackend()
    plan = PlanWindows(clock=lambda: NOW)
    plan.observe(info(WARNING_LINE))
    backend.plan_accounts = plan.accounts()
    with TestClient(app=create_app(settings, backend=backend)) as client:
        assert client.get("/admin/accounts").status_code == 401
        assert client.get("/admin/accounts", headers={"Authorization": f"Bearer {project_key}"}).status_code == 403
        answer = client.get("/admin/accounts", headers={"Authorization": "Bearer admin-secret"})
        assert answer.status_code == 200
        assert answer.json() == {"object": "list", "data": plan.accounts()}
        metrics = client.get("/metrics", headers={"Authorization": "Bearer admin-secret"}).text
        assert 'claude_proxy_plan_utilization{account="default",window="five_hour"} 0.82' in metrics
