"""`/v1/batches`: create, retrieve, cancel and list batches of the caller's project."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post

from budgets.keys import Principal
from core.errors import InvalidRequest, NotFound, ProxyError
from proxy.batches.runner import BatchRunner
from proxy.batches.store import BatchStore
from proxy.batches.validate import SUPPORTED_ENDPOINTS
from proxy.batches.wire import TERMINAL, BatchList, BatchObject, CreateBatch
from proxy.routes._http import decode_json, json_response, page_limit
from proxy.settings import Settings, parse_window

_create_decoder = msgspec.json.Decoder(CreateBatch)


class BatchConflict(ProxyError):
    status = 409
    type = "invalid_request_error"
    default_code = "batch_not_cancellable"


def _not_found(batch_id: str) -> NotFound:
    return NotFound(f"No such Batch object: {batch_id}", param="id")


@post("/v1/batches", status_code=200)
async def create_batch(
    request: Request, principal: Principal, batch_store: BatchStore, batch_runner: BatchRunner, settings: Settings
) -> Response[bytes]:
    body = decode_json(await request.body(), _create_decoder)
    if body.endpoint not in SUPPORTED_ENDPOINTS:
        raise InvalidRequest(
            f"Unsupported endpoint '{body.endpoint}'; supported: {', '.join(SUPPORTED_ENDPOINTS)}.", param="endpoint"
        )
    if body.completion_window not in settings.batches.completion_windows:
        allowed = ", ".join(settings.batches.completion_windows)
        raise InvalidRequest(f"'completion_window' must be one of: {allowed}.", param="completion_window")
    if body.metadata is not None and len(body.metadata) > 16:
        raise InvalidRequest("'metadata' takes at most 16 pairs.", param="metadata")
    source = batch_store.get_file(principal.project.name, body.input_file_id)
    if source is None:
        raise NotFound(f"No such File object: {body.input_file_id}", param="input_file_id")
    if source.purpose != "batch":
        raise InvalidRequest("The input file must be uploaded with purpose 'batch'.", param="input_file_id")
    batch = batch_store.add_batch(
        project=principal.project.name,
        key_id=principal.key.id,
        endpoint=body.endpoint,
        input_file_id=body.input_file_id,
        completion_window=body.completion_window,
        completion_window_s=parse_window(body.completion_window) or 86_400,
        metadata=body.metadata,
    )
    batch_runner.wake()
    return json_response(batch_runner.shown(batch))


@get("/v1/batches/{batch_id:str}")
async def retrieve_batch(
    request: Request, principal: Principal, batch_id: str, batch_store: BatchStore, batch_runner: BatchRunner
) -> Response[bytes]:
    batch = batch_store.get_batch(principal.project.name, batch_id)
    if batch is None:
        raise _not_found(batch_id)
    return json_response(batch_runner.shown(batch))


@post("/v1/batches/{batch_id:str}/cancel", status_code=200)
async def cancel_batch(
    request: Request, principal: Principal, batch_id: str, batch_store: BatchStore, batch_runner: BatchRunner
) -> Response[bytes]:
    return json_response(cancel(batch_store, batch_runner, principal.project.name, batch_id))


def cancel(batch_store: BatchStore, batch_runner: BatchRunner, project: str, batch_id: str) -> BatchObject:
    """Asks the runner to cancel a batch of `project` (404 when it has none by that id, 409 when
    the batch is past cancelling); the batch as it is now."""
    batch = batch_store.get_batch(project, batch_id)
    if batch is None:
        raise _not_found(batch_id)
    if batch.status in TERMINAL or batch.status == "finalizing":
        raise BatchConflict(f"A batch that is {batch.status} cannot be cancelled.", param="id")
    if batch.status != "cancelling":
        batch_store.set_status(batch_id, "cancelling")
        batch_runner.wake()
    current = batch_store.get_batch(project, batch_id)
    return batch_runner.shown(current if current is not None else batch)


@get("/v1/batches")
async def list_batches(
    request: Request, principal: Principal, batch_store: BatchStore, batch_runner: BatchRunner
) -> Response[bytes]:
    limit = page_limit(request.query_params.get("limit"), default=20, most=100)
    listed, more = batch_store.list_batches(
        principal.project.name, limit=limit, after=request.query_params.get("after")
    )
    batches = [batch_runner.shown(batch) for batch in listed]
    return json_response(
        BatchList(
            data=batches,
            first_id=batches[0].id if batches else None,
            last_id=batches[-1].id if batches else None,
            has_more=more,
        )
    )


routes = [create_batch, retrieve_batch, cancel_batch, list_batches]
