"""Files attached to a request (chat `file` parts, Responses `input_file`) as document blocks.

Anthropic takes PDFs (as base64) and plain text as document blocks; the CLI passes them on from
its stream-json input unchanged (measured on 2.1.328). A file comes inline (`file_data`, a
base64 `data:` URL or bare base64) or by `file_id`, uploaded to `/v1/files` by the same project
with purpose `user_data` or `assistants`. Anthropic's limits are checked here, so a request
that would break them is a clear 400 with `param` instead of an upstream error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from core.documents import is_pdf, pdf_pages
from core.errors import InvalidRequest
from core.types import DocumentBlock, DocumentSource
from proxy.batches.store import BatchStore

# Anthropic's documented limits: 32 MB per request, 100 PDF pages per request.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
MAX_PDF_PAGES = 100
DOCUMENT_PURPOSES = ("user_data", "assistants")
PDF = "application/pdf"
_TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".log", ".json", ".xml", ".html", ".htm")


class StoredFile(NamedTuple):
    filename: str
    purpose: str
    content: bytes


FileReader = Callable[[str], Awaitable[StoredFile | None]]
"""Reads one of the project's uploaded files by id; None when it has no such file."""


def file_reader(store: BatchStore, project: str) -> FileReader:
    """The project's own files, and no one else's."""

    async def read(file_id: str) -> StoredFile | None:
        found = store.get_file(project, file_id)
        if found is None:
            return None
        content = await asyncio.to_thread(store.read_file, file_id)
        return StoredFile(found.filename, found.purpose, content)

    return read


async def load_files(wanted: list[tuple[str, str]], reader: FileReader | None) -> dict[str, StoredFile]:
    """The files of `wanted` ((file_id, param) pairs), each checked to exist and to have been
    uploaded for use as model input."""
    loaded: dict[str, StoredFile] = {}
    for file_id, param in wanted:
        if file_id in loaded:
            continue
        found = await reader(file_id) if reader is not None else None
        if found is None:
            raise InvalidRequest(f"No such File object: {file_id}", param=param, code="invalid_file_id")
        if found.purpose not in DOCUMENT_PURPOSES:
            raise InvalidRequest(
                f"File {file_id} was uploaded with purpose '{found.purpose}'; files given to the model must have"
                f" purpose {' or '.join(DOCUMENT_PURPOSES)}.",
                param=param,
                code="invalid_file_purpose",
            )
        loaded[file_id] = found
    return loaded


class Documents:
    """The documents of one request, counted against Anthropic's limits as they are added."""

    def __init__(self, files: dict[str, StoredFile] | None = None) -> None:
        self._files = files or {}
        self._bytes = 0
        self._pages = 0

    def from_file_id(self, file_id: str, param: str) -> DocumentBlock:
        found = self._files.get(file_id)
        if found is None:  # not among the files loaded for the request
            raise InvalidRequest(f"No such File object: {file_id}", param=param, code="invalid_file_id")
        return self.block(found.content, media_type=None, filename=found.filename, param=param)

    def from_data(self, file_data: str, filename: str | None, param: str) -> DocumentBlock:
        """`file_data`: a base64 `data:` URL, or bare base64 (its type then from `filename` or
        its first bytes)."""
        media_type = None
        payload = file_data
        if file_data.startswith("data:"):
            header, _, payload = file_data[5:].partition(",")
            media_type, _, encoding = header.partition(";")
            if encoding != "base64":
                raise InvalidRequest("File data must be base64.", param=param, code="invalid_file")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("The file's base64 data does not decode.", param=param, code="invalid_file") from None
        return self.block(raw, media_type=media_type or None, filename=filename, param=param)

    def block(self, raw: bytes, *, media_type: str | None, filename: str | None, param: str) -> DocumentBlock:
        kind = _kind(raw, media_type, filename, param)
        self._bytes += len(raw) if kind == "text" else -(-len(raw) // 3) * 4  # as sent upstream
        if self._bytes > MAX_DOCUMENT_BYTES:
            raise InvalidRequest(
                f"The request's documents exceed Anthropic's limit of {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB.",
                param=param,
                code="file_too_large",
            )
        title = filename or None
        if kind == "text":
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest("Text files must be UTF-8.", param=param, code="invalid_file") from None
            return DocumentBlock(source=DocumentSource(type="text", media_type="text/plain", data=text), title=title)
        self._pages += pdf_pages(raw) or 0
        if self._pages > MAX_PDF_PAGES:
            raise InvalidRequest(
                f"The request's PDFs have more than {MAX_PDF_PAGES} pages in all, Anthropic's limit.",
                param=param,
                code="too_many_pages",
            )
        data = base64.b64encode(raw).decode()
        return DocumentBlock(source=DocumentSource(type="base64", media_type=PDF, data=data), title=title)


def _kind(raw: bytes, media_type: str | None, filename: str | None, param: str) -> str:
    """ "pdf" or "text"; any other file is a 400."""
    name = (filename or "").lower()
    if media_type == PDF or (media_type is None and (name.endswith(".pdf") or is_pdf(raw))):
        if not is_pdf(raw):
            raise InvalidRequest("The file is not a PDF.", param=param, code="invalid_file")
        return "pdf"
    if (media_type or "").startswith("text/") or (media_type is None and name.endswith(_TEXT_SUFFIXES)):
        return "text"
    raise InvalidRequest(
        "Only PDF and plain text files can be given to the model.", param=param, code="unsupported_file_type"
    )
