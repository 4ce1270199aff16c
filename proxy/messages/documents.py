"""Anthropic `document` and `search_result` blocks of a Messages request.

A base64 PDF in a user turn goes to the model as a document block, checked against Anthropic's
limits by `proxy.documents.Documents` (as chat's file parts are); plain-text and content
documents and search results reach it as text. Inside a tool result, where the CLI carries text
only, a PDF becomes a short note.
"""

from __future__ import annotations

from core.errors import InvalidRequest
from core.types import Block, TextBlock
from proxy.documents import PDF, Documents
from proxy.wire.messages import DocumentParam, SearchResultParam


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def document_blocks(part: DocumentParam | SearchResultParam, param: str, documents: Documents) -> list[Block]:
    """The block the model gets for a document of a user turn."""
    source = part.source if isinstance(part, DocumentParam) else {}
    if isinstance(part, DocumentParam) and source.get("type") == "base64":
        if source.get("media_type") != PDF:
            raise _unsupported(f"{param}.source: base64 documents must be PDFs ({PDF}).", f"{param}.source")
        return [documents.from_data(f"data:{PDF};base64,{source.get('data', '')}", part.title, f"{param}.source")]
    text = document_text(part, param)
    return [TextBlock(text)] if text else []


def document_text(part: DocumentParam | SearchResultParam, param: str) -> str:
    """A text document, a content document or a search result as text."""
    if isinstance(part, SearchResultParam):
        body = "\n".join(block.text for block in part.content)
        return f"{part.title} ({part.source})\n{body}"
    source = part.source
    kind = source.get("type")
    if kind == "text":
        text = str(source.get("data", ""))
    elif kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(str(piece.get("text", "")) for piece in content or [] if isinstance(piece, dict))
    elif kind == "base64":
        return "[a PDF document the tool returned is not passed on by this proxy]"
    else:
        raise _unsupported(
            f"{param}.source: documents by URL or file id are not supported; send base64 PDF or text.",
            f"{param}.source",
        )
    title = part.title or ""
    return f"{title}\n\n{text}" if title and text else text
