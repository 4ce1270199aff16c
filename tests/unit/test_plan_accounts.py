"""Several Claude accounts: the `accounts` and `plan` settings, each account's launch environment,
the rotation over the plan's windows (least used first, refused and overage accounts left out),
and the pool keeping every process to its account. The pool runs on fake processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.claude_cli.accounts import launch_specs
from adapters.claude_cli.events import PlanWindow, RateLimitInfo
from adapters.claude_cli.plan import PlanWindows
from adapters.claude_cli.pool import CliPool
from adapters.claude_cli.settings import AccountSettings, ClaudeSettings, PoolSettings
from core.errors import RateLimited
from core.types import Completed, TokenUsage
from proxy.settings import SettingsError, load_settings
from tests.unit.test_pool import Clock, Factory, FakeProcess, serve_and_park

NOW = 1_796_126_050


def info(status: str, utilization: float, reset: int, *, overage: bool = False) -> RateLimitInfo:
    window_status = {"allowed": "allowed", "warning": "allowed_warning", "rejected": "rejected"}[status]
    return RateLimitInfo(
        status="rejected" if status == "rejected" else "allowed",
        resetsAt=reset,
        rateLimitType="five_hour",
        isUsingOverage=overage,
        unifiedWindows={"five_hour": PlanWindow(utilization=utilization, resetsAt=reset, status=window_status)},
    )


class Now:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


# Settings


def test_accounts_load_from_the_config_file_and_default_to_none(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "accounts:\n"
        "  - {name: alice, env: {CLAUDE_CODE_OAUTH_TOKEN: t-a}}\n"
        "  - {name: bob, config_dir: /srv/bob}\n"
        "plan: {allow_overage: true}\n"
    )
    settings = load_settings(config, environ={})
    assert [(a.name, a.env, a.config_dir) for a in settings.accounts] == [
        ("alice", {"CLAUDE_CODE_OAUTH_TOKEN": "t-a"}, None),
        ("bob", {}, "/srv/bob"),
    ]
    assert settings.plan.allow_overage is True
    defaults = load_settings(None, environ={})
    assert defaults.accounts == [] and defaults.plan.allow_overage is False


@pytest.mark.parametrize(
    ("accounts", "complaint"),
    [
        ("[{name: a, env: {X: '1'}}, {name: a, env: {X: '2'}}]", "its own name"),
        ("[{name: a}]", "needs env"),
        ("[{name: 'a b', env: {X: '1'}}]", "is not a name"),
        ("[{name: a, env: {X: '1'}, token: x}]", "invalid configuration"),
    ],
)
def test_bad_accounts_are_refused_at_start_up_without_echoing_values(tmp_path, accounts, complaint):
    config = tmp_path / "config.yaml"
    config.write_text(f"accounts: {accounts}\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, environ={})
    assert complaint in str(refused.value)


# Each account's environment


def test_without_accounts_the_default_account_runs_with_the_servers_environment():
    environ = {"PATH": "/bin", "ANTHROPIC_API_KEY": "server-key", "CLAUDE_CONFIG_DIR": "/cfg"}
    [(name, (spec, config))] = launch_specs("/bin/claude", ClaudeSettings(), [], environ).items()
    assert name == "default"
    assert spec.env["ANTHROPIC_API_KEY"] == "server-key" and spec.bare is True
    assert config == Path("/cfg")


def test_each_account_gets_its_own_credentials_and_none_of_the_servers():
    environ = {"PATH": "/bin", "ANTHROPIC_API_KEY": "server-key", "CLAUDE_CONFIG_DIR": "/cfg"}
    accounts = [
        AccountSettings(name="alice", env={"CLAUDE_CODE_OAUTH_TOKEN": "t-alice"}),
        AccountSettings(name="bob", config_dir="/srv/bob"),
        AccountSettings(name="carol", env={"ANTHROPIC_API_KEY": "k-carol"}),
    ]
    specs = launch_specs("/bin/claude", ClaudeSettings(env={"X_SHARED": "1"}), accounts, environ)
    alice, bob, carol = (specs[name][0] for name in ("alice", "bob", "carol"))
    assert alice.env["CLAUDE_CODE_OAUTH_TOKEN"] == "t-alice" and "ANTHROPIC_API_KEY" not in alice.env
    assert alice.bare is False  # an OAuth login is lost in bare mode
    assert not {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"} & set(bob.env)
    assert bob.env["CLAUDE_CONFIG_DIR"] == "/srv/bob" and specs["bob"][1] == Path("/srv/bob")
    assert carol.env["ANTHROPIC_API_KEY"] == "k-carol" and carol.bare is True
    assert specs["alice"][1] == Path("/cfg")  # the server's config dir, without a config_dir of its own
    assert all(spec.env["X_SHARED"] == "1" and spec.env["PATH"] == "/bin" for spec in (alice, bob, carol))


# The rotation


def test_the_least_used_account_comes_first_and_ties_keep_the_configured_order():
    plan = PlanWindows(Now(), accounts=["alice", "bob", "carol"])
    assert plan.rotation(["alice", "bob", "carol"]) == ["alice", "bob", "carol"]
    plan.observe(info("warning", 0.82, NOW + 3600), "alice")
    plan.observe(info("allowed", 0.3, NOW + 3600), "bob")
    assert plan.rotation(["alice", "bob", "carol"]) == ["carol", "bob", "alice"]
    # The account holding the conversation's warm process comes first while it may serve.
    assert plan.rotation(["alice", "bob", "carol"], sticky="alice") == ["alice", "carol", "bob"]


def test_a_window_past_its_reset_no_longer_counts():
    clock = Now()
    plan = PlanWindows(clock, accounts=["alice", "bob"])
    plan.observe(info("rejected", 1.0, NOW + 60), "alice")
    plan.observe(info("allowed", 0.5, NOW + 3600), "bob")
    assert plan.rotation(["alice", "bob"]) == ["bob"]
    assert [a["status"] for a in plan.accounts()] == ["rejected", "ok"]
    clock.now = NOW + 61
    assert plan.rotation(["alice", "bob"]) == ["alice", "bob"]  # alice's window reset: 0 used
    assert [a["status"] for a in plan.accounts()] == ["ok", "ok"]


def test_when_every_account_is_refused_the_429_waits_for_the_earliest_reset():
    plan = PlanWindows(Now(), accounts=["alice", "bob"])
    plan.observe(info("rejected", 1.0, NOW + 5400), "alice")
    assert plan.refusal(["alice", "bob"]) is None
    plan.observe(info("rejected", 1.0, NOW + 600), "bob")
    refused = plan.refusal(["alice", "bob"])
    assert isinstance(refused, RateLimited)
    assert refused.retry_after == 600 and refused.headers == {"Retry-After": "600"}
    assert "5-hour limit" in refused.message and "UTC" in refused.message
    assert plan.rotation(["alice", "bob"]) == []


@pytest.mark.parametrize(
    ("allow_overage", "rotation", "status"), [(False, ["bob"], "overage"), (True, ["bob", "alice"], "overage")]
)
def test_an_account_on_overage_leaves_the_rotation_unless_overage_is_allowed(allow_overage, rotation, status):
    plan = PlanWindows(Now(), accounts=["alice", "bob"], allow_overage=allow_overage)
    plan.observe(info("rejected", 1.0, NOW + 3600, overage=True), "alice")
    plan.observe(info("allowed", 0.9, NOW + 3600), "bob")
    assert plan.rotation(["alice", "bob"]) == rotation
    assert plan.accounts()[0]["status"] == status
    refused = plan.rejection("alice")
    if allow_overage:
        assert refused is None
    else:
        assert refused is not None and "allow_overage" in refused.message and refused.retry_after == 3600


def test_the_end_of_a_run_names_its_account_and_defaults_to_default():
    assert Completed(finish_reason="stop", usage=TokenUsage()).account == "default"


# The pool keeps processes to their account


def run_pool(test: Callable[..., Awaitable[None]], tmp_path: Path, spare: list[str], **settings: Any) -> None:
    values: dict[str, Any] = {"size": 3, "spares": 0, "warm_max": 4, "queue_timeout_s": 5.0, **settings}

    async def main() -> None:
        factory = Factory()
        pool = CliPool(
            PoolSettings(**values), factory, workroot=tmp_path, clock=Clock(), spare_account=lambda: spare[0]
        )
        await pool.start()
        try:
            await asyncio.wait_for(test(pool, factory), timeout=5)
        finally:
            await pool.close()

    asyncio.run(main())


def test_a_warm_conversation_serves_only_its_own_account(tmp_path):
    async def test(pool: CliPool[FakeProcess], factory: Factory) -> None:
        kept = await serve_and_park(pool, "conversation", account="alice")
        assert kept.account == "alice" and pool.warm_account("conversation") == "alice"
        # Asked for bob (alice is refused now), the conversation gets a new process of bob's.
        async with pool.lease(model="sonnet", warm_key="conversation", account="bob") as proc:
            assert proc is not kept and proc.account == "bob"
        assert pool.warm_account("conversation") == "alice"
        async with pool.lease(model="sonnet", warm_key="conversation", account="alice") as proc:
            assert proc is kept

    run_pool(test, tmp_path, ["alice"])


def test_an_idle_process_is_reused_only_for_its_own_account(tmp_path):
    async def test(pool: CliPool[FakeProcess], factory: Factory) -> None:
        async with pool.lease(model="sonnet", profile="p", account="alice") as idle:
            idle.profile = "p"
            pool.park(idle, None, turn_ended=True)
        async with pool.lease(model="sonnet", profile="p", account="bob") as proc:
            assert proc is not idle and proc.account == "bob" and idle.rewinds == []
        async with pool.lease(model="sonnet", profile="p", account="alice") as proc:
            assert proc is idle and idle.rewinds == [0]

    run_pool(test, tmp_path, ["alice"])


def test_spares_are_started_for_the_preferred_account_and_give_way_when_it_changes(tmp_path):
    spare = ["alice"]

    async def test(pool: CliPool[FakeProcess], factory: Factory) -> None:
        await _spares(pool, 1)
        [first] = factory.made
        assert first.account == "alice"
        spare[0] = "bob"  # the plan now favours bob
        async with pool.lease(model="sonnet", account="bob") as proc:
            # alice's spare does not serve bob; it is closed, and a spare of bob's replaces it.
            assert proc is not first and proc.account == "bob"
        await _spares(pool, 1, lambda: first.closed)
        assert [proc.account for proc in factory.made] == ["alice", "bob", "bob"]
        async with pool.lease(model="sonnet", account="bob") as proc:
            assert proc is factory.made[2]

    run_pool(test, tmp_path, spare, spares=1)


async def _spares(pool: CliPool[FakeProcess], count: int, also: Callable[[], bool] = lambda: True) -> None:
    for _ in range(500):
        if pool.stats()["spares"] == count and pool.stats()["starting"] == 0 and also():
            return
        await asyncio.sleep(0.001)
    pytest.fail("the spares did not settle")
