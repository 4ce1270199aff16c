"""budgets.overhead.OverheadCalibration, and admission of small requests against small budgets."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from budgets.admission import AdmissionControl, Spent, counted_prompt_tokens
from budgets.database import open_database
from budgets.guard import InProcessBudgetGuard
from budgets.keys import ApiKey, Principal, Project
from budgets.ledger import UsageLedger
from budgets.overhead import OverheadCalibration
from budgets.pricing import cost_of, price_for
from budgets.ratelimit import InProcessRateLimiter
from budgets.settings import BudgetSettings
from core.errors import InsufficientQuota
from core.types import CompletionJob, ModelChoice, TextBlock, TokenUsage

SONNET = ModelChoice(requested="gpt-4o", claude_model="sonnet")
CLI_PROMPT = 3000  # what the CLI adds to each prompt, as the upstream counts it
ANSWER = TokenUsage(output_tokens=2)  # a two-word answer


def test_the_configured_overhead_stands_until_a_model_has_enough_samples() -> None:
    calibration = OverheadCalibration(BudgetSettings(overhead_tokens=500, overhead_samples=3, overhead_margin=0.1))
    calibration.observe("sonnet", counted=10, upstream=210)
    calibration.observe("sonnet", counted=10, upstream=310)
    assert calibration.tokens("sonnet") == 500
    calibration.observe("sonnet", counted=20, upstream=270)
    # The largest gap seen (300), plus the margin.
    assert calibration.tokens("sonnet") == math.ceil(300 * 1.1)
    assert calibration.tokens("haiku") == 500  # each model learns on its own
    assert calibration.calibrated() == {"sonnet": 330}


def test_gaps_above_the_configured_overhead_raise_it() -> None:
    calibration = OverheadCalibration(BudgetSettings(overhead_tokens=500, overhead_samples=1, overhead_margin=0.0))
    calibration.observe("opus", counted=5, upstream=4005)
    assert calibration.tokens("opus") == 4000


def test_runs_the_upstream_never_counted_and_negative_gaps_teach_nothing_wrong() -> None:
    calibration = OverheadCalibration(BudgetSettings(overhead_tokens=500, overhead_samples=1, overhead_margin=0.5))
    calibration.observe("sonnet", counted=10, upstream=0)
    assert calibration.tokens("sonnet") == 500
    calibration.observe("sonnet", counted=100, upstream=90)  # tiktoken counted more than Claude
    assert calibration.tokens("sonnet") == 0


def test_zero_samples_turns_calibration_off() -> None:
    calibration = OverheadCalibration(BudgetSettings(overhead_tokens=500, overhead_samples=0))
    for _ in range(5):
        calibration.observe("sonnet", counted=10, upstream=20)
    assert calibration.tokens("sonnet") == 500
    assert calibration.calibrated() == {}


@pytest.fixture
def control(tmp_path: Path) -> AdmissionControl:
    ledger = UsageLedger(open_database(tmp_path))
    # Cost from the price table, so each settled figure is plain arithmetic.
    settings = BudgetSettings(prefer_cli_cost=False)
    return AdmissionControl(
        ledger=ledger, guard=InProcessBudgetGuard(ledger), limiter=InProcessRateLimiter(), settings=settings
    )


def small_job(text: str = "Say two words") -> CompletionJob:
    return CompletionJob(model="sonnet", system="", history=[], prompt=[TextBlock(text)], max_output_tokens=16)


def principal(project: Project) -> Principal:
    return Principal(project=project, key=ApiKey(id=1, project=project.name, prefix="sk-cp-small", created_at=0))


def upstream_usage(job: CompletionJob) -> TokenUsage:
    """What the upstream reports for `job`: the CLI's prompt around the caller's text."""
    return TokenUsage(input_tokens=counted_prompt_tokens(job) + CLI_PROMPT, output_tokens=ANSWER.output_tokens)


async def run_small(control: AdmissionControl, who: Principal, n: int, *, delay: float = 0.0) -> bool:
    """Admits and settles one small request; False when the budget refused it."""
    job = small_job(f"Say two words ({n})")
    try:
        admission = await control.admit(who, SONNET, job, copies=1, request_id=f"req-{who.project.name}-{n}")
    except InsufficientQuota:
        return False
    await asyncio.sleep(delay)
    await admission.settle(Spent(usages=[upstream_usage(job)]), 200)
    return True


def small_cost(control: AdmissionControl) -> float:
    return cost_of(upstream_usage(small_job()), price_for("sonnet", control.settings.prices))


async def calibrate(control: AdmissionControl) -> None:
    warm = principal(Project(name="warm"))
    for n in range(control.settings.overhead_samples):
        assert await run_small(control, warm, n)


def test_a_budget_worth_two_and_a_half_small_requests_admits_two(control: AdmissionControl) -> None:
    async def scenario() -> list[bool]:
        await calibrate(control)
        small = principal(Project(name="small", budget_usd=2.5 * small_cost(control)))
        return [await run_small(control, small, n) for n in range(4)]

    assert asyncio.run(scenario()) == [True, True, False, False]
    assert control.overhead.tokens("sonnet") < control.settings.overhead_tokens * 10


def test_an_uncalibrated_overhead_below_the_cli_prompt_is_raised_by_calibration(control: AdmissionControl) -> None:
    # The configured 500 is far below the CLI's 3000: once calibrated, a reservation covers it.
    asyncio.run(calibrate(control))
    job = small_job()
    assert control.estimated_prompt_tokens(job) >= upstream_usage(job).prompt_tokens


def test_twenty_concurrent_small_requests_overspend_by_at_most_one(control: AdmissionControl) -> None:
    async def scenario() -> tuple[float, int]:
        await calibrate(control)
        budget = 2.5 * small_cost(control)
        racing = principal(Project(name="racing", budget_usd=budget))
        passed = await asyncio.gather(*(run_small(control, racing, n, delay=0.01) for n in range(20)))
        return budget, sum(passed)

    budget, passed = asyncio.run(scenario())
    spent = control.ledger.spent("racing")
    assert 1 <= passed < 20
    assert spent == pytest.approx(passed * small_cost(control), rel=0.01)
    assert spent <= budget + 1.01 * small_cost(control)
