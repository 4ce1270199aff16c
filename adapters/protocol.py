"""The contract between the proxy and whatever runs Claude for it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol, runtime_checkable

from core.types import BackendEvent, CompletionJob


@runtime_checkable
class ChatBackend(Protocol):
    """Runs completion jobs. Opened and closed by the app's lifespan.

    `stream` yields `TextDelta`s as the model produces them and one `Completed` last. It raises
    `core.errors.ProxyError` subclasses for failures. Closing the iterator early (the caller
    went away, a stop sequence matched) must release everything the job took at once.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]: ...

    def health(self) -> dict[str, Any]: ...

    def accounts(self) -> list[dict[str, Any]]:
        """The Claude accounts this backend runs on, with their plan's usage windows as seen so
        far (`name`, `status`, `windows`); empty when it sees none (an API key, a queue)."""
        ...
