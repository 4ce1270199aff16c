"""The `budgets` section of the config: how requests are priced and reserved."""

from __future__ import annotations

import msgspec

from budgets.pricing import DEFAULT_PRICES, Price


class BudgetSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How requests are priced and reserved against project budgets."""

    default_max_tokens: int = 8192
    overhead_tokens: int = 500
    overhead_samples: int = 3
    overhead_margin: float = 0.1
    prefer_cli_cost: bool = True
    prices: dict[str, Price] = msgspec.field(default_factory=lambda: dict(DEFAULT_PRICES))
