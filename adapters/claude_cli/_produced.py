"""What one answer has produced so far, and how much of it the caller was given.

When the upstream breaks off mid-answer the CLI abandons the content blocks it had streamed and
retries: the answer is cut back to before them (`abandon`), and the retry is matched against
what was passed on already (`Redo`): only what goes beyond it is passed on, and where it
differs, the whole answer is given again after a `Retracted`.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import msgspec

from adapters.claude_cli._redo import Redo
from adapters.claude_cli._thinking import Thoughts
from core.types import BackendEvent, Retracted, TextBlock, TextDelta, ToolCallArguments, ToolCallStarted, ToolUseBlock

log = logging.getLogger("claude_proxy.cli")

_decode = msgspec.json.Decoder()


class Call:
    """One call of a caller's tool, its arguments as they streamed."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []

    def block(self) -> ToolUseBlock:
        try:
            value = _decode.decode("".join(self.arguments) or "{}")
        except msgspec.DecodeError:
            value = {}
        return ToolUseBlock(id=self.id, name=self.name, input=value if isinstance(value, dict) else {})


class _Mark(NamedTuple):
    """How much of the answer there was when a content block began (text pieces, calls, held
    text pieces, thinking blocks): an abandoned block cuts it back to that."""

    text: int
    calls: int
    held: int
    thoughts: int


class Produced:
    """The answer's text, tool calls and thinking; `blocks` maps the current message's content
    block indexes to calls."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[Call] = []
        self.held_text: list[str] = []  # with tool_choice "required", text waits for a call
        self.thoughts = Thoughts()
        self.blocks: dict[int, int] = {}  # content block index -> call index
        self._marks: dict[int, _Mark] = {}  # content block index -> the answer before it
        self._redo: Redo | None = None  # the caller holds more than the answer, cut back, does

    @property
    def redoing(self) -> bool:
        """A retry is repeating what the caller has: its thinking is not passed on again."""
        return self._redo is not None

    def assistant_blocks(self) -> list[Any]:
        """The answer as the upstream holds it: its thinking, its text, then its tool calls."""
        text = "".join(self.text)
        return self.thoughts.blocks() + ([TextBlock(text)] if text else []) + [call.block() for call in self.calls]

    def new_message(self) -> None:
        self.blocks, self._marks = {}, {}  # block indexes count within one message
        self.thoughts.new_message()

    def block_started(self, index: int) -> None:
        """Content block `index` begins: remember how much of the answer came before it."""
        self._marks[index] = _Mark(len(self.text), len(self.calls), len(self.held_text), self.thoughts.mark())

    def release_held(self) -> str:
        """The text held back until a call, no longer held."""
        held, self.held_text = "".join(self.held_text), []
        return held

    def abandon(self, from_block: int) -> None:
        """The CLI dropped this message's blocks from `from_block` on and will retry: cut the
        answer back to before them, keeping what the caller was given to match the retry."""
        mark = self._marks.get(from_block)
        if mark is None:
            return  # no such block began: nothing of it was given
        if self._redo is None:
            given = [(call.id, call.name, "".join(call.arguments)) for call in self.calls]
            self._redo = Redo("".join(self.text), given)
        del self.text[mark.text :], self.calls[mark.calls :], self.held_text[mark.held :]
        self.thoughts.cut(mark.thoughts)
        self._redo.rewind(len("".join(self.text)), [len("".join(call.arguments)) for call in self.calls])
        self.blocks = {block: call for block, call in self.blocks.items() if call < mark.calls}

    def passed_on(self, event: TextDelta | ToolCallStarted | ToolCallArguments) -> list[BackendEvent]:
        """The event as the caller should get it: while a retry repeats what the caller has, only
        what goes beyond; where it differs, the whole answer again."""
        redo = self._redo
        if redo is None:
            return [event]
        part: str | bool | None
        if isinstance(event, TextDelta):
            part = redo.text(event.text)
            out: list[BackendEvent] = [TextDelta(part)] if part else []
        elif isinstance(event, ToolCallStarted):
            part = redo.call(event.index, event.id, event.name)
            out = [event] if part else []
        else:
            part = redo.arguments(event.index, event.arguments)
            out = [ToolCallArguments(event.index, part)] if part else []
        if part is None:
            return self._retract()
        if redo.caught_up():
            self._redo = None
        return out

    def settle_redo(self) -> list[BackendEvent]:
        """The retried message ended: if it never reached all the caller has, the caller's copy
        is not the answer."""
        if self._redo is None:
            return []
        if self._redo.caught_up():
            self._redo = None
            return []
        return self._retract()

    def _retract(self) -> list[BackendEvent]:
        log.warning("the upstream's retried answer differs from what was passed on: giving it again")
        self._redo = None
        out: list[BackendEvent] = [Retracted()]
        if self.text:
            out.append(TextDelta("".join(self.text)))
        for index, call in enumerate(self.calls):
            out.append(ToolCallStarted(index=index, id=call.id, name=call.name))
            if call.arguments:
                out.append(ToolCallArguments(index, "".join(call.arguments)))
        return out
