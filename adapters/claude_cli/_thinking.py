"""One answer's thinking, read off the CLI's stream events: its blocks as they build up (text
pieces, then the signature; or a redacted block's data) and the events the caller gets of them."""

from __future__ import annotations

from adapters.claude_cli.events import SignatureDeltaBody, ThinkingDeltaBody
from core.types import (
    RedactedThinking,
    RedactedThinkingBlock,
    ThinkingBlock,
    ThinkingDelta,
    ThinkingEvent,
    ThinkingSigned,
)


class _Thought:
    __slots__ = ("pieces", "redacted", "signature")

    def __init__(self, redacted: str | None = None) -> None:
        self.pieces: list[str] = []
        self.signature = ""
        self.redacted = redacted

    def block(self) -> ThinkingBlock | RedactedThinkingBlock:
        if self.redacted is not None:
            return RedactedThinkingBlock(self.redacted)
        return ThinkingBlock(thinking="".join(self.pieces), signature=self.signature)


class Thoughts:
    """The thinking blocks of one answer, by their content block index in the message."""

    def __init__(self) -> None:
        self._thoughts: list[_Thought] = []
        self._at: dict[int, int] = {}  # content block index -> thought

    def blocks(self) -> list[ThinkingBlock | RedactedThinkingBlock]:
        return [thought.block() for thought in self._thoughts]

    def new_message(self) -> None:
        self._at = {}  # block indexes count within one message

    def start(self, index: int, block: dict[str, object]) -> list[ThinkingEvent] | None:
        """A content block began: its events if it is thinking, else None."""
        kind = block.get("type")
        if kind not in ("thinking", "redacted_thinking"):
            return None
        self._at[index] = len(self._thoughts)
        data = str(block.get("data", "")) if kind == "redacted_thinking" else None
        self._thoughts.append(_Thought(redacted=data))
        return [RedactedThinking(data)] if data is not None else []

    def delta(self, index: int, delta: ThinkingDeltaBody | SignatureDeltaBody) -> list[ThinkingEvent]:
        if index not in self._at:
            return []
        thought = self._thoughts[self._at[index]]
        if isinstance(delta, SignatureDeltaBody):
            thought.signature += delta.signature
            return [ThinkingSigned(delta.signature)]
        if not delta.thinking:
            return []
        first = not thought.pieces
        thought.pieces.append(delta.thinking)
        return [ThinkingDelta(delta.thinking, first=first)]

    def mark(self) -> int:
        return len(self._thoughts)

    def cut(self, mark: int) -> None:
        """Drops the blocks from `mark` on (the CLI abandoned them)."""
        del self._thoughts[mark:]
        self._at = {block: thought for block, thought in self._at.items() if thought < mark}
