"""The model's thinking as Responses `reasoning` items, and back.

A reasoning item's `summary` holds the thinking text when the caller asks for a summary
(`reasoning.summary`). With include `reasoning.encrypted_content`, `encrypted_content` holds the
signed thinking blocks themselves, so that a stateless client (Codex) can send them back and the
upstream gets them intact in the next turn, as Claude requires inside tool loops. This server
does not encrypt them: they are the caller's own thinking and Anthropic's signatures (redacted
blocks stay as Anthropic encrypted them); the signature is what the upstream checks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

import msgspec
from msgspec import Struct

from core.types import RedactedThinkingBlock, ThinkingBlock, ThinkingDelta, ThinkingEvent, ThinkingSigned
from proxy.pipeline.run import add_thinking
from proxy.responses.items import new_id
from proxy.wire.response_events import (
    OutputItemAdded,
    OutputItemDone,
    ReasoningSummaryPartAdded,
    ReasoningSummaryPartDone,
    ReasoningSummaryTextDelta,
    ReasoningSummaryTextDone,
)
from proxy.wire.response_events import StreamEvent as Event
from proxy.wire.responses import Item, ReasoningItem, ResponsesRequest, SummaryText

ThinkingBlocks = list[ThinkingBlock | RedactedThinkingBlock]

ENCRYPTED_CONTENT = "reasoning.encrypted_content"
_PREFIX = "claude-proxy.thinking.v1:"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ThinkingBlocks)


class ReasoningOutput(Struct, frozen=True, kw_only=True):
    """What a response shows of the thinking: summary parts, and the signed blocks."""

    summary: bool = False
    encrypted: bool = False


def reasoning_output(request: ResponsesRequest) -> ReasoningOutput:
    summary = (request.reasoning or {}).get("summary")
    return ReasoningOutput(summary=summary is not None, encrypted=ENCRYPTED_CONTENT in (request.include or []))


def encode_thinking(blocks: ThinkingBlocks) -> str:
    return _PREFIX + base64.urlsafe_b64encode(_encoder.encode(blocks)).decode()


def decode_thinking(content: str | None) -> ThinkingBlocks:
    """The blocks `encode_thinking` wrote; none for anything else (another server's reasoning)."""
    if not content or not content.startswith(_PREFIX):
        return []
    try:
        return _decoder.decode(base64.urlsafe_b64decode(content[len(_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return []


def reasoning_item(blocks: ThinkingBlocks, output: ReasoningOutput, item_id: str | None = None) -> ReasoningItem:
    """The finished item for `blocks`. Blocks without a signature (a cached answer's) cannot
    go back to the upstream, so they are not offered as `encrypted_content`."""
    summary = [SummaryText(block.thinking) for block in blocks if isinstance(block, ThinkingBlock)]
    signed = all(isinstance(block, RedactedThinkingBlock) or block.signature for block in blocks)
    return ReasoningItem(
        id=item_id or new_id("rs_"),
        summary=summary if output.summary else [],
        encrypted_content=encode_thinking(blocks) if output.encrypted and signed else msgspec.UNSET,
        status="completed",
    )


class ReasoningStream:
    """One answer's thinking as streamed Responses events: the reasoning item opens with the
    first piece, each thinking block is a summary part (when asked for), and the item closes
    before the answer's text or calls begin."""

    def __init__(
        self, frame: Callable[[Callable[[int], Event]], bytes], output: list[Item], shown: ReasoningOutput
    ) -> None:
        self._frame = frame
        self._output = output
        self._shown = shown
        self._item: ReasoningItem | None = None
        self._index = 0
        self._blocks: ThinkingBlocks = []
        self._parts: list[list[str]] = []
        self._part_open = False

    def feed(self, part: ThinkingEvent) -> list[bytes]:
        frames = self._open() if self._item is None else []
        add_thinking(self._blocks, part)
        if not self._shown.summary:
            return frames
        if isinstance(part, ThinkingDelta):
            if part.first or not self._part_open:
                frames += self._close_part() + self._open_part()
            self._parts[-1].append(part.text)
            summary_index = len(self._parts) - 1
            frames.append(
                self._frame(
                    lambda n: ReasoningSummaryTextDelta(
                        sequence_number=n,
                        item_id=self._item_id,
                        output_index=self._index,
                        summary_index=summary_index,
                        delta=part.text,
                    )
                )
            )
        elif isinstance(part, ThinkingSigned):
            frames += self._close_part()
        return frames

    def close(self) -> list[bytes]:
        """Ends the item, if one is open."""
        if self._item is None:
            return []
        frames = self._close_part()
        done = reasoning_item(self._blocks, self._shown, self._item_id)
        index = self._index
        self._output[index] = done
        self._item, self._blocks, self._parts = None, [], []
        frames.append(self._frame(lambda n: OutputItemDone(sequence_number=n, output_index=index, item=done)))
        return frames

    @property
    def _item_id(self) -> str:
        return str(self._item.id) if self._item is not None else ""

    def _open(self) -> list[bytes]:
        item = self._item = ReasoningItem(id=new_id("rs_"), summary=[], status="in_progress")
        self._output.append(item)
        index = self._index = len(self._output) - 1
        return [self._frame(lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=item))]

    def _open_part(self) -> list[bytes]:
        self._parts.append([])
        self._part_open = True
        summary_index = len(self._parts) - 1
        return [
            self._frame(
                lambda n: ReasoningSummaryPartAdded(
                    sequence_number=n,
                    item_id=self._item_id,
                    output_index=self._index,
                    summary_index=summary_index,
                    part=SummaryText(""),
                )
            )
        ]

    def _close_part(self) -> list[bytes]:
        if not self._part_open:
            return []
        self._part_open = False
        text = "".join(self._parts[-1])
        summary_index = len(self._parts) - 1
        item_id, index = self._item_id, self._index
        return [
            self._frame(
                lambda n: ReasoningSummaryTextDone(
                    sequence_number=n, item_id=item_id, output_index=index, summary_index=summary_index, text=text
                )
            ),
            self._frame(
                lambda n: ReasoningSummaryPartDone(
                    sequence_number=n,
                    item_id=item_id,
                    output_index=index,
                    summary_index=summary_index,
                    part=SummaryText(text),
                )
            ),
        ]
