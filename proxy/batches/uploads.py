"""Receiving an upload: the multipart body parsed as it arrives, the file part written to disk.

`request.form()` would hand over the file, but only after buffering it (to a temporary file
outside `storage.path`), and the route then read it whole into memory: four 90 MB uploads cost
270 MB. Here the body is read from `request.stream()` chunk by chunk; the file part goes to
`<id>.part` under `storage.path/files`, `files.max_bytes` is enforced on the bytes actually
received, and the part file is removed on every way out except `BatchStore.record_file`, which
moves it into place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from litestar import Request
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from core.errors import InvalidRequest, RequestTooLarge
from proxy.batches.filenames import safe_filename
from proxy.batches.store import BatchStore, new_id

# The body of an upload is the file plus the form around it (part headers, `purpose`, the
# boundaries): the route's body limit is `files.max_bytes` plus this, and the file itself is
# held to `files.max_bytes` exactly.
FORM_OVERHEAD_BYTES = 64 * 1024
_MAX_FIELD_BYTES = 4096  # a text field is a word such as `batch`
_MAX_PARTS = 16
# Received bytes are written in slices of this size, each in a worker thread, so the event loop
# never waits on the disk and an upload holds at most this much in memory.
_WRITE_BYTES = 1024 * 1024


@dataclass
class Upload:
    """The form's text fields and its `file` part, written to `store.part_path(file_id)`."""

    fields: dict[str, str] = field(default_factory=dict)
    file_id: str | None = None
    filename: str = ""
    size: int = 0


@asynccontextmanager
async def receive_upload(
    request: Request[Any, Any, Any], store: BatchStore, *, max_bytes: int
) -> AsyncIterator[Upload]:
    """Parses the multipart body of `request`; the `file` part's contents are on disk, under
    `store.part_path(upload.file_id)`, until the body of the `async with` records or refuses them."""
    content_type, options = request.content_type
    boundary = options.get("boundary")
    if content_type != "multipart/form-data" or not boundary:
        raise InvalidRequest("Missing required parameter: 'file' (a multipart file part).", param="file")
    upload = Upload()
    try:
        await _parse(request, boundary, store, upload, max_bytes)
        yield upload
    finally:
        if upload.file_id is not None:
            store.part_path(upload.file_id).unlink(missing_ok=True)


async def _parse(request: Request[Any, Any, Any], boundary: str, store: BatchStore, upload: Upload, limit: int) -> None:
    form = _Form(store, upload, limit)
    try:
        with PushMultipartParser(boundary, max_segment_count=_MAX_PARTS) as parser:
            async for chunk in request.stream():
                if parser.closed:
                    continue  # past the closing boundary: the epilogue is read to its end and ignored
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        await form.begin(event)
                    elif event is None:
                        await form.end()
                    else:
                        await form.take(event)
    except (MultipartError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Invalid multipart/form-data: {exc}.") from exc
    finally:
        form.close()


class _Form:
    """Where each part's bytes go: the `file` part to disk, text fields to `upload.fields`, any
    other part (a file under another name) nowhere."""

    def __init__(self, store: BatchStore, upload: Upload, limit: int) -> None:
        self.store = store
        self.upload = upload
        self.limit = limit
        self.field: str | None = None  # the text field being read
        self.text = bytearray()
        self.sink: IO[bytes] | None = None  # the file part being written
        self.pending = bytearray()

    async def begin(self, segment: MultipartSegment) -> None:
        if segment.name == "file":
            if self.upload.file_id is not None:
                raise InvalidRequest("Send one 'file' part, not several.", param="file")
            self.upload.file_id = new_id("file-")
            self.upload.filename = safe_filename(segment.filename)
            self.sink = await asyncio.to_thread(self.store.part_path(self.upload.file_id).open, "wb")
        elif segment.name and segment.filename is None:
            self.field = segment.name

    async def take(self, data: bytes) -> None:
        if self.sink is not None:
            self.upload.size += len(data)
            if self.upload.size > self.limit:
                raise RequestTooLarge(
                    f"The file is larger than this server accepts ({self.limit} bytes).", param="file"
                )
            self.pending += data
            if len(self.pending) >= _WRITE_BYTES:
                await asyncio.to_thread(_flush, self.sink, self.pending)
        elif self.field is not None:
            self.text += data
            if len(self.text) > _MAX_FIELD_BYTES:
                raise InvalidRequest(f"The form field '{self.field}' is too long.", param=self.field)

    async def end(self) -> None:
        if self.sink is not None:
            await asyncio.to_thread(_flush, self.sink, self.pending)
            self.close()
        elif self.field is not None:
            self.upload.fields[self.field] = self.text.decode()
        self.field, self.text = None, bytearray()

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None


def _flush(sink: IO[bytes], pending: bytearray) -> None:
    sink.write(pending)
    pending.clear()
