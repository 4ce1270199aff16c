"""An answer the upstream broke off, retried by the CLI, against what the caller already got.

When the upstream's stream breaks mid-answer (a reset connection, an `error` event inside the
200 stream), the CLI abandons the blocks it had streamed and asks again. What the proxy passed
on of those blocks cannot be taken back from a caller who streams, so the answer the retry
rebuilds is compared with it as it arrives: while it repeats what the caller has, nothing is
passed on again; past that, the rest is passed on; where it differs, the caller's copy is wrong
and the whole answer has to be given again (see `core.types.Retracted`).
"""

from __future__ import annotations

import json

from adapters.claude_cli.events import (
    AnthropicEvent,
    AnthropicUsage,
    AssistantMessage,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    InputJsonDeltaBody,
    MessageDelta,
    MessageDeltaBody,
    MessageStart,
    MessageStartBody,
    MessageStop,
    SignatureDeltaBody,
    TextDeltaBody,
    ThinkingDeltaBody,
)


class Redo:
    """The caller's copy of the answer (`given_*`, grown by what is passed on) and how far the
    answer as rebuilt has matched it. Calls are compared by their place in the answer."""

    def __init__(self, text: str, calls: list[tuple[str, str, str]]) -> None:
        self.given_text = text
        self.given_calls = [list(call) for call in calls]  # [id, name, arguments]
        self._text_len = len(text)
        self._args_len = [len(call[2]) for call in calls]

    def rewind(self, text_len: int, args_lens: list[int]) -> None:
        """The answer was cut back to this much text and these calls (with their arguments)."""
        self._text_len = text_len
        self._args_len = list(args_lens)

    def caught_up(self) -> bool:
        """The rebuilt answer holds all the caller has: from here on it only grows."""
        return (
            self._text_len >= len(self.given_text)
            and len(self._args_len) >= len(self.given_calls)
            and all(done >= len(call[2]) for done, call in zip(self._args_len, self.given_calls, strict=False))
        )

    def text(self, piece: str) -> str | None:
        """What to pass on of the answer's next text; None when it differs from the caller's."""
        start = self._text_len
        self._text_len += len(piece)
        out = _beyond(self.given_text, start, piece)
        if out:
            self.given_text += out
        return out

    def call(self, index: int, call_id: str, name: str) -> bool | None:
        """Whether to pass on the answer's call number `index` as a new call (False: the caller
        has it already), or None when it differs from the caller's."""
        if self._text_len < len(self.given_text) or index != len(self._args_len):
            return None  # the caller got text (or calls) that the rebuilt answer skipped
        self._args_len.append(0)
        if index < len(self.given_calls):
            return None if self.given_calls[index][:2] != [call_id, name] else False
        if not self.caught_up():
            return None
        self.given_calls.append([call_id, name, ""])
        return True

    def arguments(self, index: int, piece: str) -> str | None:
        """What to pass on of the next piece of call `index`'s arguments; None when it differs."""
        start = self._args_len[index]
        given = self.given_calls[index][2]
        if start == 0 and not piece.startswith(given):
            piece = _restyled(piece, given)
        self._args_len[index] += len(piece)
        out = _beyond(given, start, piece)
        if out:
            self.given_calls[index][2] += out
        return out


def _beyond(given: str, start: int, piece: str) -> str | None:
    """The part of `piece` (which goes at `start`) past the end of `given`; None if they differ."""
    overlap = given[start : start + len(piece)]
    if not piece.startswith(overlap):
        return None
    return piece[len(overlap) :]


def _restyled(arguments: str, given: str) -> str:
    """Whole `arguments` written in the style of the `given` start of them, if one fits: a
    retried message holds its calls' input as objects, not as the text that was streamed."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    for separators in ((", ", ": "), (",", ":")):
        for ascii_only in (False, True):
            text = json.dumps(value, separators=separators, ensure_ascii=ascii_only)
            if text.startswith(given):
                return text
    return arguments


def retried_events(message: AssistantMessage) -> list[AnthropicEvent]:
    """A message the CLI got back without streaming, as the stream events it would have been."""
    events: list[AnthropicEvent] = [
        MessageStart(MessageStartBody(id=message.id, model=message.model, usage=message.usage))
    ]
    for index, block in enumerate(message.content):
        kind = block.get("type")
        if kind == "text":
            events.append(ContentBlockStart(index, {"type": "text", "text": ""}))
            events.append(ContentBlockDelta(index, TextDeltaBody(str(block.get("text", "")))))
        elif kind == "tool_use":
            events.append(ContentBlockStart(index, {**block, "input": {}}))
            # Written as the upstream streams it, so a retry can continue a streamed start.
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            events.append(ContentBlockDelta(index, InputJsonDeltaBody(arguments)))
        elif kind == "thinking":
            events.append(ContentBlockStart(index, {"type": "thinking", "thinking": "", "signature": ""}))
            events.append(ContentBlockDelta(index, ThinkingDeltaBody(str(block.get("thinking", "")))))
            events.append(ContentBlockDelta(index, SignatureDeltaBody(str(block.get("signature", "")))))
        elif kind == "redacted_thinking":
            events.append(ContentBlockStart(index, block))
        else:
            continue  # blocks the proxy does not pass on
        events.append(ContentBlockStop(index))
    usage = AnthropicUsage(output_tokens=message.usage.output_tokens)
    events.append(MessageDelta(MessageDeltaBody(stop_reason=message.stop_reason), usage))
    events.append(MessageStop())
    return events
