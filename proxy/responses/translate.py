"""A Responses API request as a pipeline `Submission`, plus what the response object echoes.

The conversation is the stored history (from `previous_response_id`) followed by the request's
input items (`conversation`), after the request passed OpenAI's checks (`validation`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from msgspec import Struct

from core.errors import InvalidRequest
from proxy.chat.images import fetch_image_urls
from proxy.chat.translate import ANY_JSON_OBJECT, MAX_IMAGE_BYTES
from proxy.documents import Documents, FileReader, StoredFile, load_files
from proxy.pipeline import Submission
from proxy.reasoning import reasoning_effort
from proxy.responses.conversation import Conversation
from proxy.responses.items import Resolver, input_items
from proxy.responses.reasoning import ReasoningOutput, reasoning_output
from proxy.responses.tools import ToolNames, offered_tools, tool_setup
from proxy.responses.validation import validate
from proxy.selection import text_features
from proxy.settings import ImageSettings
from proxy.wire.responses import (
    EchoedText,
    EchoedTool,
    FormatJsonObject,
    FormatJsonSchema,
    FormatText,
    InputFile,
    InputImage,
    Item,
    MessageItem,
    Reasoning,
    Response,
    ResponsesRequest,
    TextParam,
    ToolChoiceCustom,
    ToolChoiceFunction,
)

_Part = TypeVar("_Part")


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


def _schema(text: TextParam | None) -> dict[str, Any] | None:
    if text is None or isinstance(text.format, FormatText):
        return None
    if isinstance(text.format, FormatJsonObject):
        return ANY_JSON_OBJECT
    return text.format.schema


def _message_parts(items: list[Item], kind: type[_Part]) -> Iterator[tuple[_Part, str]]:
    """Every content part of type `kind` in the input's messages, with its param path."""
    for i, item in enumerate(items):
        if isinstance(item, MessageItem) and isinstance(item.content, list):
            for j, part in enumerate(item.content):
                if isinstance(part, kind):
                    yield part, f"input[{i}].content[{j}]"


def image_urls(items: list[Item]) -> list[tuple[str, str]]:
    """(url, param) of every image of the request's input, for fetching when allowed."""
    return [(part.image_url, f"{at}.image_url") for part, at in _message_parts(items, InputImage) if part.image_url]


async def responses_submission(
    request: ResponsesRequest,
    *,
    history: list[Item],
    images: ImageSettings,
    resolve: Resolver | None = None,
    files: FileReader | None = None,
    counting: bool = False,
) -> Translated:
    """The translation of a request whose earlier conversation is `history`, its item
    references found by `resolve` and its files given by id read from `files`; its http(s)
    images are fetched first when the operator allows. `counting` (input_tokens) takes a
    request without input, or whose conversation does not end with the caller's turn."""
    validate(request, counting=counting)
    items = input_items(request.input, resolve) if request.input is not None else []
    fetched = await fetch_image_urls(image_urls(items), images)
    loaded = await load_files(file_ids(items), files)
    return to_submission(
        request,
        items,
        history=history,
        fetched=fetched,
        max_image_bytes=images.max_bytes,
        files=loaded,
        counting=counting,
    )


def file_ids(items: list[Item]) -> list[tuple[str, str]]:
    """(file_id, param) of every input_file given by id."""
    return [(part.file_id, f"{at}.file_id") for part, at in _message_parts(items, InputFile) if part.file_id]


def to_submission(
    request: ResponsesRequest,
    items: list[Item],
    *,
    history: list[Item],
    fetched: Mapping[str, str] | None = None,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    files: dict[str, StoredFile] | None = None,
    counting: bool = False,
) -> Translated:
    """`items` (the request's normalised input) after `history`, as a submission."""
    tools = offered_tools(request)
    conversation = Conversation(fetched or {}, max_image_bytes, tools.names, Documents(files))
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
    history_turns, prompt = turns[:-1], turns[-1].content if turns else []
    if not turns or turns[-1].role != "user":
        if not counting:
            raise InvalidRequest(
                "The input must end with a user message or a function_call_output that has content.", param="input"
            )
        history_turns, prompt = turns, []  # counted, never run
    submission = Submission(
        model=request.model,
        system="\n\n".join(system),
        history=history_turns,
        prompt=prompt,
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
