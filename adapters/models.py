"""Maps the model names callers send (OpenAI aliases, tiers, Claude ids) onto Claude models."""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.errors import ModelNotFound
from core.types import ModelChoice

CLAUDE_TIERS = ("haiku", "sonnet", "opus")
# Full ids go to the CLI's argv, so only a conservative character set is accepted.
_CLAUDE_ID = re.compile(r"claude-[a-z0-9][a-z0-9.\-]{1,80}")


class ModelAliases:
    """Resolves model names; unknown names raise `ModelNotFound` (404 `model_not_found`)."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self._aliases = {}
        for alias, target in aliases.items():
            if target not in CLAUDE_TIERS and not _CLAUDE_ID.fullmatch(target):
                raise ValueError(f"models.{alias}: {target!r} is not haiku, sonnet, opus or a claude-* id")
            self._aliases[alias] = target

    def resolve(self, name: str) -> ModelChoice:
        target = self._aliases.get(name)
        if target is None and (name in CLAUDE_TIERS or _CLAUDE_ID.fullmatch(name)):
            target = name
        if target is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
            )
        return ModelChoice(requested=name, claude_model=target)

    def model_ids(self) -> list[str]:
        """Every name a caller may use that is known ahead: aliases, then the tiers."""
        names = list(self._aliases)
        names += [tier for tier in CLAUDE_TIERS if tier not in self._aliases]
        return names
