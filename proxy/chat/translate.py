"""Validation of a chat completion request and its translation into a pipeline `Submission`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from core.errors import InvalidRequest
from core.types import Block, TextBlock, Turn
from proxy.chat.images import fetch_images, image_block
from proxy.chat.tools import ToolTurns, tool_setup
from proxy.documents import Documents, FileReader, StoredFile, load_files
from proxy.pipeline import Submission
from proxy.reasoning import reasoning_effort
from proxy.selection import features
from proxy.settings import ImageSettings
from proxy.wire.chat_request import (
    AssistantMessage,
    ChatCompletionRequest,
    ContentPart,
    DeveloperMessage,
    FilePart,
    FunctionMessage,
    ImagePart,
    InputAudioPart,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

MAX_STOP_SEQUENCES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # the Anthropic API's limit per image
MAX_N = 128


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _range(value: float | int | None, low: float, high: float, param: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"Invalid '{param}': must be between {low:g} and {high:g}, got {value}.", param=param)


def validate(request: ChatCompletionRequest) -> None:
    """Checks OpenAI's own bounds, and refuses what this backend cannot do honestly."""
    if not request.messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages", code="empty_array")
    _range(request.temperature, 0, 2, "temperature")
    _range(request.top_p, 0, 1, "top_p")
    _range(request.frequency_penalty, -2, 2, "frequency_penalty")
    _range(request.presence_penalty, -2, 2, "presence_penalty")
    _range(request.top_logprobs, 0, 20, "top_logprobs")
    _range(request.n, 1, MAX_N, "n")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, param)
        if value is not None and value < 1:
            raise InvalidRequest(f"Invalid '{param}': must be at least 1, got {value}.", param=param)
    if request.logprobs or request.top_logprobs:
        raise _unsupported("logprobs are not available from Claude through this proxy.", "logprobs")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", param="stop")
    if request.functions or request.function_call:
        raise _unsupported(
            "The deprecated 'functions' and 'function_call' are not supported; use 'tools' and 'tool_choice'.",
            "functions" if request.functions else "function_call",
        )
    if request.tools and request.response_format and request.response_format.get("type") != "text":
        raise _unsupported("'tools' together with a JSON 'response_format' is not supported.", "response_format")
    response_schema(request.response_format)  # raises on a malformed response_format
    if request.modalities and any(m != "text" for m in request.modalities):
        raise _unsupported("Only the text modality is supported.", "modalities")


ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


def response_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema the answer must match, from OpenAI's `response_format`; None for text."""
    if not response_format:
        return None
    kind = response_format.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return ANY_JSON_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "response_format json_schema needs 'json_schema': {'name': ..., 'schema': {...}}.",
                param="response_format.json_schema",
            )
        return schema
    raise InvalidRequest(f"Unknown response_format type '{kind}'.", param="response_format.type")


def _blocks(
    content: str | list[ContentPart] | None,
    param: str,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    fetched: Mapping[str, str] | None = None,
    documents: Documents | None = None,
) -> list[Block]:
    """The content's blocks; `documents` (user messages only) takes its file parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextBlock(content)] if content else []
    blocks: list[Block] = []
    for i, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(TextBlock(part.text))
        elif isinstance(part, RefusalPart):
            blocks.append(TextBlock(part.refusal))
        elif isinstance(part, ImagePart):
            url = (fetched or {}).get(part.image_url.url, part.image_url.url)
            blocks.append(image_block(url, f"{param}[{i}].image_url.url", max_bytes=max_image_bytes))
        elif isinstance(part, FilePart):
            if documents is None:
                raise InvalidRequest("Only user messages may carry files.", param=f"{param}[{i}]")
            blocks.append(_document(part, f"{param}[{i}].file", documents))
        elif isinstance(part, InputAudioPart):
            raise _unsupported("Audio content parts are not supported.", f"{param}[{i}]")
    return blocks


def _document(part: FilePart, param: str, documents: Documents) -> Block:
    file_id, file_data, filename = (part.file.get(key) for key in ("file_id", "file_data", "filename"))
    if isinstance(file_id, str) and file_id:
        return documents.from_file_id(file_id, f"{param}.file_id")
    if isinstance(file_data, str) and file_data:
        return documents.from_data(file_data, filename if isinstance(filename, str) else None, f"{param}.file_data")
    raise InvalidRequest("A file part needs 'file_data' or 'file_id'.", param=param)


def file_ids(request: ChatCompletionRequest) -> list[tuple[str, str]]:
    """(file_id, param) of every file part given by id."""
    wanted = []
    for i, message in enumerate(request.messages):
        parts = getattr(message, "content", None)
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            file_id = part.file.get("file_id") if isinstance(part, FilePart) else None
            if isinstance(file_id, str) and file_id:
                wanted.append((file_id, f"messages[{i}].content[{j}].file.file_id"))
    return wanted


def _system_text(content: str | list[ContentPart], param: str) -> str:
    if isinstance(content, list) and any(isinstance(part, ImagePart | FilePart) for part in content):
        raise InvalidRequest("System and developer messages take text only.", param=param)
    return "".join(block.text for block in _blocks(content, param) if isinstance(block, TextBlock))


async def chat_submission(
    request: ChatCompletionRequest, images: ImageSettings, files: FileReader | None = None
) -> Submission:
    """The submission for a chat request, its http(s) images fetched when the operator allows
    and its files given by id read from the project's `files`."""
    fetched = await fetch_images(request, images)
    loaded = await load_files(file_ids(request), files)
    return to_submission(request, max_image_bytes=images.max_bytes, fetched=fetched, files=loaded)


def to_submission(
    request: ChatCompletionRequest,
    *,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    fetched: Mapping[str, str] | None = None,
    files: dict[str, StoredFile] | None = None,
) -> Submission:
    """Splits the messages into system prompt, earlier turns and the new user input; raises
    400 for what OpenAI refuses or this backend cannot do honestly."""
    validate(request)
    system: list[str] = []
    turns: list[Turn] = []
    tool_turns = ToolTurns()
    documents = Documents(files)
    for i, message in enumerate(request.messages):
        param = f"messages[{i}].content"
        if isinstance(message, (SystemMessage, DeveloperMessage)):
            text = _system_text(message.content, param)
            if text:
                system.append(text)
            continue
        if isinstance(message, FunctionMessage):
            raise _unsupported("The deprecated 'function' role is not supported; use 'tool'.", f"messages[{i}].role")
        if isinstance(message, ToolMessage):
            role: Literal["user", "assistant"] = "user"
            blocks: list[Block] = [tool_turns.result(message, i)]
        else:
            tool_turns.check_answered(i)
            role = "user" if isinstance(message, UserMessage) else "assistant"
            blocks = _blocks(
                message.content,
                param,
                max_image_bytes,
                fetched,
                documents if isinstance(message, UserMessage) else None,
            )
            if isinstance(message, AssistantMessage):
                if message.function_call:
                    raise _unsupported(
                        "'function_call' is deprecated; use 'tool_calls'.", f"messages[{i}].function_call"
                    )
                blocks += tool_turns.calls(message.tool_calls or [], i)
        if not blocks:
            continue  # an empty turn carries nothing and the upstream rejects empty content
        if turns and turns[-1].role == role:
            # Anthropic merges consecutive same-role messages; doing it here keeps turns alternating.
            turns[-1].content.extend(blocks)
        else:
            turns.append(Turn(role=role, content=blocks))
    tool_turns.check_answered(len(request.messages))
    tools = tool_setup(request, used=tool_turns.used)
    if tools.instruction:
        system.append(tools.instruction)
    if not turns or turns[-1].role != "user":
        raise InvalidRequest("The last non-system message must be a user message with content.", param="messages")
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return Submission(
        model=request.model,
        system="\n\n".join(system),
        history=turns[:-1],
        prompt=turns[-1].content,
        max_output_tokens=request.max_completion_tokens or request.max_tokens,
        json_schema=response_schema(request.response_format),
        tools=tools.specs,
        tool_choice=tools.choice,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        effort=reasoning_effort(request.reasoning_effort, "reasoning_effort"),
        n=request.n or 1,
        stops=stops,
        stream=bool(request.stream),
        include_usage=bool(request.stream and request.stream_options and request.stream_options.include_usage),
        sampling={
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "response_format": request.response_format,
        },
        features=lambda: features(request),
    )
