"""The tokens the CLI adds to a prompt, learnt per model from the runs that settled.

A reservation prices the prompt the proxy can count (tiktoken over the caller's text) plus an
overhead for what it cannot: the CLI's own system prompt and tool definitions, and the gap
between tiktoken and Claude's tokenizer. A fixed overhead must be generous enough for every
model, which makes a small budget refuse requests that would fit it several times over. So each
settled run reports how many prompt tokens the upstream really counted, and the overhead of its
model becomes the largest gap seen lately plus a margin. Until a model has enough samples, the
configured `budgets.overhead_tokens` stands in.
"""

from __future__ import annotations

import math
from collections import deque

from budgets.settings import BudgetSettings

KEPT_SAMPLES = 50  # the most recent gaps per model; an old CLI's larger prompt ages out


class OverheadCalibration:
    """Owns the overhead added to each model's prompt estimate; admission reads and feeds it."""

    def __init__(self, settings: BudgetSettings) -> None:
        self._configured = settings.overhead_tokens
        self._needed = settings.overhead_samples
        self._margin = settings.overhead_margin
        self._gaps: dict[str, deque[int]] = {}

    def tokens(self, model: str) -> int:
        """The overhead to add to `model`'s prompt estimate now."""
        gaps = self._gaps.get(model)
        if self._needed <= 0 or gaps is None or len(gaps) < self._needed:
            return self._configured
        # The largest recent gap, so that a reservation stays above what a run really costs.
        return math.ceil(max(gaps) * (1 + self._margin))

    def observe(self, model: str, counted: int, upstream: int) -> None:
        """Records one settled run of `model`: `counted` prompt tokens estimated without the
        overhead, `upstream` the prompt tokens the upstream reported (cache reads and writes too)."""
        if self._needed <= 0 or upstream <= 0:
            return  # a run that failed before the upstream counted anything says nothing
        self._gaps.setdefault(model, deque(maxlen=KEPT_SAMPLES)).append(max(upstream - counted, 0))

    def calibrated(self) -> dict[str, int]:
        """The overhead of each model that has enough samples to be calibrated."""
        return {model: self.tokens(model) for model, gaps in self._gaps.items() if len(gaps) >= self._needed > 0}
