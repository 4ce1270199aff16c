"""`/v1/files`: upload, list, retrieve, download and delete, each project seeing only its own."""

from __future__ import annotations

from litestar import Request, Response, Router, delete, get, post
from litestar.response import File

from budgets.keys import Principal
from core.errors import InvalidRequest, NotFound
from proxy.batches.filenames import content_disposition
from proxy.batches.store import BatchStore
from proxy.batches.uploads import FORM_OVERHEAD_BYTES, receive_upload
from proxy.batches.wire import FILE_PURPOSES, FileDeleted, FileList, FileObject
from proxy.routes._http import json_response, page_limit
from proxy.settings import Settings


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id")


@post("/", status_code=200)
async def upload_file(
    request: Request, principal: Principal, batch_store: BatchStore, settings: Settings
) -> Response[bytes]:
    async with receive_upload(request, batch_store, max_bytes=settings.files.max_bytes) as upload:
        if upload.file_id is None:
            raise InvalidRequest("Missing required parameter: 'file' (a multipart file part).", param="file")
        purpose = upload.fields.get("purpose")
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(f"'purpose' must be one of {', '.join(FILE_PURPOSES)}.", param="purpose")
        created = batch_store.record_file(upload.file_id, principal.project.name, upload.filename, purpose, upload.size)
    return json_response(created)


@get("/")
async def list_files(request: Request, principal: Principal, batch_store: BatchStore) -> Response[bytes]:
    params = request.query_params
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order")
    limit = page_limit(params.get("limit"), default=10_000, most=10_000)
    files, more = batch_store.list_files(
        principal.project.name, purpose=params.get("purpose"), limit=limit, order=order, after=params.get("after")
    )
    return json_response(FileList(data=files, first_id=_first(files), last_id=_last(files), has_more=more))


@get("/{file_id:str}")
async def retrieve_file(
    request: Request, principal: Principal, file_id: str, batch_store: BatchStore
) -> Response[bytes]:
    found = batch_store.get_file(principal.project.name, file_id)
    if found is None:
        raise _not_found(file_id)
    return json_response(found)


@get("/{file_id:str}/content")
async def file_content(request: Request, principal: Principal, file_id: str, batch_store: BatchStore) -> File:
    found = batch_store.get_file(principal.project.name, file_id)
    if found is None:
        raise _not_found(file_id)
    # Sent from disk in chunks, like the upload was received: a large file is never in memory whole.
    return File(
        batch_store.blob_path(file_id),
        media_type="application/octet-stream",
        headers={"content-disposition": content_disposition(found.filename)},
    )


@delete("/{file_id:str}", status_code=200)
async def delete_file(request: Request, principal: Principal, file_id: str, batch_store: BatchStore) -> Response[bytes]:
    if not batch_store.delete_file(principal.project.name, file_id):
        raise _not_found(file_id)
    return json_response(FileDeleted(id=file_id))


def _first(items: list[FileObject]) -> str | None:
    return items[0].id if items else None


def _last(items: list[FileObject]) -> str | None:
    return items[-1].id if items else None


def files_router(settings: Settings) -> Router:
    """The routes under /v1/files. `files.max_bytes` bounds the uploaded file itself (checked as it
    arrives); the body may be larger by the form around it."""
    return Router(
        path="/v1/files",
        route_handlers=[upload_file, list_files, retrieve_file, file_content, delete_file],
        request_max_body_size=settings.files.max_bytes + FORM_OVERHEAD_BYTES,
    )
