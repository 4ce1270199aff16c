"""A Responses API request as a pipeline `Submission`, plus what the response object echoes.

The conversation is the stored history (from `previous_response_id`) followed by the request's
input items. Messages, function calls and their outputs become the same neutral turns as chat
messages, tool calls and tool messages (`proxy.chat.tools.ToolTurns`), so a function-call loop
continues a suspended CLI process exactly as chat does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

from msgspec import Struct

from core.errors import InvalidRequest
from core.types import Block, ImageBlock, TextBlock, Turn
from proxy.chat.images import fetch_image_urls, image_block
from proxy.chat.tools import ToolTurns
from proxy.chat.translate import ANY_JSON_OBJECT, MAX_IMAGE_BYTES
from proxy.documents import Documents, FileReader, StoredFile, load_files
from proxy.pipeline import Submission
from proxy.reasoning import reasoning_effort
from proxy.responses.items import Resolver, input_items
from proxy.responses.reasoning import ReasoningOutput, decode_thinking, reasoning_output
from proxy.responses.tools import ToolNames, custom_arguments, offered_tools, tool_setup
from proxy.selection import text_features
from proxy.settings import ImageSettings
from proxy.wire.responses import (
    ContentPart,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    EchoedText,
    EchoedTool,
    FormatJsonObject,
    FormatJsonSchema,
    FormatText,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputText,
    Item,
    MessageItem,
    OutputText,
    Reasoning,
    ReasoningItem,
    Refusal,
    Response,
    ResponsesRequest,
    TextParam,
    ToolChoiceCustom,
    ToolChoiceFunction,
)

MIN_OUTPUT_TOKENS = 16  # OpenAI's own minimum for max_output_tokens
MAX_METADATA_KEYS = 16


class Translated(Struct, kw_only=True):
    """What the route needs: the submission, the items to store, the response template
    (every echoed field set; status, output and usage filled in by the renderer), and the
    hosted tools that were left out."""

    submission: Submission
    items: list[Item]
    template: Response
    omitted_tools: list[str]
    names: ToolNames
    shown: ReasoningOutput = ReasoningOutput()


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _range(value: float | None, low: float, high: float, param: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"Invalid '{param}': must be between {low:g} and {high:g}, got {value}.", param=param)


def validate(request: ResponsesRequest) -> None:
    """OpenAI's own bounds, and a 400 for what would change the answer but cannot be done."""
    _range(request.temperature, 0, 2, "temperature")
    _range(request.top_p, 0, 1, "top_p")
    if request.max_output_tokens is not None and request.max_output_tokens < MIN_OUTPUT_TOKENS:
        raise InvalidRequest(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
            f"but got {request.max_output_tokens} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    if request.top_logprobs or "message.output_text.logprobs" in (request.include or []):
        raise _unsupported("logprobs are not available from Claude through this proxy.", "top_logprobs")
    if request.conversation is not None:
        raise _unsupported("Conversations are not supported; use 'previous_response_id'.", "conversation")
    if request.prompt is not None:
        raise _unsupported("Prompt templates are not supported; send 'instructions' and 'input'.", "prompt")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if request.truncation not in (None, "auto", "disabled"):
        raise InvalidRequest("Invalid 'truncation': use 'auto' or 'disabled'.", param="truncation")
    metadata = request.metadata or {}
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"'metadata' takes at most {MAX_METADATA_KEYS} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequest(
                "'metadata' keys are at most 64 characters, values at most 512.", param=f"metadata.{key}"
            )
    if request.previous_response_id is not None and not request.previous_response_id.startswith("resp"):
        raise InvalidRequest(
            f"Invalid 'previous_response_id': '{request.previous_response_id}'. Expected an ID that begins with 'resp'.",
            param="previous_response_id",
            code="invalid_value",
        )


def _schema(text: TextParam | None) -> dict[str, Any] | None:
    if text is None or isinstance(text.format, FormatText):
        return None
    if isinstance(text.format, FormatJsonObject):
        return ANY_JSON_OBJECT
    return text.format.schema


class _Conversation:
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
        if self.tools.pending:
            missing = ", ".join(self.tools.unanswered())
            raise InvalidRequest(f"No tool output found for function call {missing}.", param="input")


def image_urls(items: list[Item]) -> list[tuple[str, str]]:
    """(url, param) of every image of the request's input, for fetching when allowed."""
    urls = []
    for i, item in enumerate(items):
        if isinstance(item, MessageItem) and isinstance(item.content, list):
            for j, part in enumerate(item.content):
                if isinstance(part, InputImage) and part.image_url:
                    urls.append((part.image_url, f"input[{i}].content[{j}].image_url"))
    return urls


async def responses_submission(
    request: ResponsesRequest,
    *,
    history: list[Item],
    images: ImageSettings,
    resolve: Resolver | None = None,
    files: FileReader | None = None,
) -> Translated:
    """The translation of a request whose earlier conversation is `history`, its item
    references found by `resolve` and its files given by id read from `files`; its http(s)
    images are fetched first when the operator
    allows."""
    validate(request)
    items = input_items(request.input, resolve)
    fetched = await fetch_image_urls(image_urls(items), images)
    loaded = await load_files(file_ids(items), files)
    return to_submission(
        request, items, history=history, fetched=fetched, max_image_bytes=images.max_bytes, files=loaded
    )


def file_ids(items: list[Item]) -> list[tuple[str, str]]:
    """(file_id, param) of every input_file given by id."""
    wanted = []
    for i, item in enumerate(items):
        if isinstance(item, MessageItem) and isinstance(item.content, list):
            for j, part in enumerate(item.content):
                if isinstance(part, InputFile) and part.file_id:
                    wanted.append((part.file_id, f"input[{i}].content[{j}].file_id"))
    return wanted


def to_submission(
    request: ResponsesRequest,
    items: list[Item],
    *,
    history: list[Item],
    fetched: Mapping[str, str] | None = None,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    files: dict[str, StoredFile] | None = None,
) -> Translated:
    """`items` (the request's normalised input) after `history`, as a submission."""
    tools = offered_tools(request)
    conversation = _Conversation(fetched or {}, max_image_bytes, tools.names, Documents(files))
    for item in history:
        conversation.add(item, "previous_response_id")
    for i, item in enumerate(items):
        conversation.add(item, f"input[{i}]")
    conversation.check_answered()
    setup, echoed_choice = tool_setup(request, tools, conversation.tools.used)
    schema = _schema(request.text)
    if schema is not None and setup.specs:
        raise _unsupported("'tools' together with a JSON 'text.format' is not supported.", "text.format")
    system = [request.instructions] if request.instructions else []
    system += conversation.system
    if setup.instruction:
        system.append(setup.instruction)
    turns = conversation.turns
    if not turns or turns[-1].role != "user":
        raise InvalidRequest(
            "The input must end with a user message or a function_call_output that has content.", param="input"
        )
    submission = Submission(
        model=request.model,
        system="\n\n".join(system),
        history=turns[:-1],
        prompt=turns[-1].content,
        max_output_tokens=request.max_output_tokens,
        json_schema=schema,
        tools=setup.specs,
        tool_choice=setup.choice,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        effort=reasoning_effort(_effort(request), "reasoning.effort"),
        stream=bool(request.stream),
        sampling={"temperature": request.temperature, "top_p": request.top_p, "text": _format_key(request.text)},
        features=lambda: text_features(
            texts=conversation.texts,
            latest=conversation.latest,
            turns=conversation.user_turns,
            tools=bool(tools.specs),
            schema=schema is not None,
        ),
    )
    return Translated(
        submission=submission,
        items=items,
        template=_template(request, tools.echoed, echoed_choice),
        omitted_tools=tools.omitted,
        names=tools.names,
        shown=reasoning_output(request),
    )


def _effort(request: ResponsesRequest) -> str | None:
    effort = (request.reasoning or {}).get("effort")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequest("'reasoning.effort' must be a string.", param="reasoning.effort")
    return effort


def _format_key(text: TextParam | None) -> Any:
    fmt = text.format if text is not None else FormatText()
    if isinstance(fmt, FormatJsonSchema):
        return {"type": "json_schema", "name": fmt.name, "schema": fmt.schema}
    return {"type": "json_object" if isinstance(fmt, FormatJsonObject) else "text"}


def _template(
    request: ResponsesRequest, tools: list[EchoedTool], tool_choice: str | ToolChoiceFunction | ToolChoiceCustom
) -> Response:
    """The response object as created: in progress, nothing produced yet."""
    effort = (request.reasoning or {}).get("effort")
    summary = (request.reasoning or {}).get("summary")
    return Response(
        id="resp_" + secrets.token_hex(24),
        created_at=int(time.time()),
        status="in_progress",
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        max_tool_calls=request.max_tool_calls,
        model=request.model,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        prompt_cache_key=request.prompt_cache_key,
        reasoning=Reasoning(
            effort=effort if isinstance(effort, str) else None,
            summary=summary if isinstance(summary, str) else None,
        ),
        safety_identifier=request.safety_identifier,
        store=request.store is not False,
        temperature=request.temperature if request.temperature is not None else 1.0,
        text=EchoedText(format=request.text.format if request.text else FormatText()),
        tool_choice=tool_choice,
        tools=tools,
        top_p=request.top_p if request.top_p is not None else 1.0,
        truncation=request.truncation or "disabled",
        user=request.user,
        metadata=request.metadata or {},
    )
