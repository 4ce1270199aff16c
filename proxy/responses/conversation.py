"""A Responses API conversation as neutral turns: stored history, then the request's input items.

Messages, function calls and their outputs become the same neutral turns as chat messages, tool
calls and tool messages (`proxy.chat.tools.ToolTurns`), so a function-call loop continues a
suspended CLI process exactly as chat does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from core.errors import InvalidRequest
from core.types import Block, ImageBlock, TextBlock, Turn
from proxy.chat.images import image_block
from proxy.chat.tools import ToolTurns
from proxy.documents import Documents
from proxy.responses.compaction import summary_text, unseal
from proxy.responses.reasoning import decode_thinking
from proxy.responses.tools import ToolNames, custom_arguments
from proxy.wire.responses import (
    CompactionItem,
    ContentPart,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputText,
    Item,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
)


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


class Conversation:
    """Turns and system texts from items, checked as OpenAI checks them."""

    def __init__(
        self, fetched: Mapping[str, str], max_image_bytes: int, names: ToolNames, documents: Documents
    ) -> None:
        self.system: list[str] = []
        self._documents = documents
        self.turns: list[Turn] = []
        self.tools = ToolTurns()
        self.texts: list[str] = []  # every message text, for the `auto` model's features
        self.user_turns = 0
        self.latest = ""
        self._fetched = fetched
        self._max_image_bytes = max_image_bytes
        self._names = names

    def _add(self, role: Literal["user", "assistant"], blocks: list[Block]) -> None:
        if not blocks:
            return  # an empty turn carries nothing and the upstream rejects empty content
        if self.turns and self.turns[-1].role == role:
            self.turns[-1].content.extend(blocks)  # keep turns alternating, as Anthropic merges them
        else:
            self.turns.append(Turn(role=role, content=blocks))

    def _blocks(self, parts: list[ContentPart], param: str, *, images: bool) -> list[Block]:
        blocks: list[Block] = []
        for j, part in enumerate(parts):
            where = f"{param}.content[{j}]"
            if isinstance(part, (InputText, OutputText)):
                if part.text:
                    blocks.append(TextBlock(part.text))
            elif isinstance(part, Refusal):
                blocks.append(TextBlock(part.refusal))
            elif isinstance(part, InputImage):
                if not images:
                    raise InvalidRequest("Only user messages may carry images.", param=where)
                if part.image_url is None:
                    raise _unsupported("Images by 'file_id' are not supported; send a data: URL.", f"{where}.file_id")
                url = self._fetched.get(part.image_url, part.image_url)
                blocks.append(image_block(url, f"{where}.image_url", max_bytes=self._max_image_bytes))
            elif isinstance(part, InputFile):
                if not images:
                    raise InvalidRequest("Only user messages may carry files.", param=where)
                blocks.append(self._document(part, where))
        return blocks

    def _document(self, part: InputFile, where: str) -> Block:
        if part.file_id:
            return self._documents.from_file_id(part.file_id, f"{where}.file_id")
        if part.file_data:
            return self._documents.from_data(part.file_data, part.filename, f"{where}.file_data")
        if part.file_url:
            raise _unsupported(
                "Files by 'file_url' are not fetched; send 'file_data' or 'file_id'.", f"{where}.file_url"
            )
        raise InvalidRequest("An input_file needs 'file_data' or 'file_id'.", param=where)

    def add(self, item: Item, param: str) -> None:
        """Add one item (`param` names it in errors) to the turns or the system texts."""
        if isinstance(item, MessageItem):
            parts: list[ContentPart] = (
                item.content if isinstance(item.content, list) else [InputText(text=item.content)]
            )
            blocks = self._blocks(parts, param, images=item.role == "user")
            text = "".join(block.text for block in blocks if isinstance(block, TextBlock))
            self.texts.append(text)
            if item.role in ("system", "developer"):
                if any(isinstance(block, ImageBlock) for block in blocks):
                    raise InvalidRequest("System and developer messages take text only.", param=param)
                if text:
                    self.system.append(text)
            elif item.role == "user":
                self.check_answered()
                self.user_turns += 1
                self.latest = text
                self._add("user", blocks)
            else:
                self._add("assistant", blocks)
        elif isinstance(item, (FunctionCallItem, CustomToolCallItem)):
            # Under the name the model was offered: a namespaced tool's flat name, a custom
            # tool's raw input as the one `input` argument.
            namespace = item.namespace if isinstance(item.namespace, str) else None
            custom = isinstance(item, CustomToolCallItem)
            call = self.tools.call(
                item.call_id,
                self._names.flat(item.name, namespace),
                custom_arguments(item.input) if isinstance(item, CustomToolCallItem) else item.arguments,
                name_param=f"{param}.name",
                arguments_param=f"{param}.input" if custom else f"{param}.arguments",
            )
            self._add("assistant", [call])
        elif isinstance(item, ReasoningItem):
            # Thinking this server returned goes back to the upstream with the calls or text
            # that follow it; anyone else's reasoning is opaque to it and left out.
            encrypted = item.encrypted_content if isinstance(item.encrypted_content, str) else None
            self._add("assistant", list(decode_thinking(encrypted)))
        elif isinstance(item, CompactionItem):
            summary = unseal(item.encrypted_content)
            if summary is None:
                raise _unsupported(
                    "This compaction item was not made by this server's /v1/responses/compact; its content"
                    " cannot be read here.",
                    f"{param}.encrypted_content",
                )
            self._add("user", [TextBlock(summary_text(summary))])
        else:
            self._add("user", [self._result(item, param)])

    def _result(self, item: FunctionCallOutputItem | CustomToolCallOutputItem, param: str) -> Block:
        if isinstance(item.output, str):
            text = item.output
        else:
            if any(not isinstance(part, InputText) for part in item.output):
                raise _unsupported("Function call outputs take text only.", f"{param}.output")
            text = "".join(part.text for part in item.output if isinstance(part, InputText))
        block = self.tools.answer(item.call_id, text)
        if block is None:
            raise InvalidRequest(
                f"No tool call found for function call output with call_id {item.call_id}.",
                param=f"{param}.call_id",
            )
        return block

    def check_answered(self) -> None:
        """A 400 while a function call the conversation made has no output yet."""
        if self.tools.pending:
            missing = ", ".join(self.tools.unanswered())
            raise InvalidRequest(f"No tool output found for function call {missing}.", param="input")
