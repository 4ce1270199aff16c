"""Background responses (`background: true`): answered at once as `queued`, run in a task the
app's lifespan owns, their progress and result kept in the response store.

A streamed one (`stream: true`) also keeps its events as it runs (`proxy.responses.live`):
the creating request streams them, and so can any later retrieve with `stream=true`, from
where it left off; once the run ends they are kept with the stored response.

The stored row is the state a caller sees: `queued` when created (and while the Claude plan
is nearly used up, see proxy/plan_gate.py), `in_progress` once the task runs, then
`completed`, `incomplete`, `failed` or `cancelled`. Cancelling a task cancels
its pipeline run, which kills the CLI process and settles the admission exactly as a caller who
goes away does (the ledger row has status 499). Closing the app cancels what still runs and
marks it failed, and rows a crashed server left unfinished are marked failed when it starts
again, so nothing stays `in_progress` forever.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator

import msgspec

from budgets.keys import Principal
from core.errors import InvalidRequest, NotFound, ProxyError
from proxy.pipeline import Pipeline
from proxy.plan_gate import PlanGate
from proxy.responses.live import EventLog
from proxy.responses.render import failure, render_response, stream_started
from proxy.responses.store import ResponseStore
from proxy.responses.translate import Translated
from proxy.wire.responses import Response, ResponseError

log = logging.getLogger("claude_proxy.responses")

UNFINISHED = ("queued", "in_progress")
SHUT_DOWN = ResponseError(code="server_error", message="The server shut down before this background response finished.")


class BackgroundResponses:
    """The running background responses, by id. One per app, closed by its lifespan."""

    def __init__(self, store: ResponseStore, pipeline: Pipeline, gate: PlanGate | None = None) -> None:
        self._store = store
        self._pipeline = pipeline
        self._gate = gate
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[tuple[str, str], EventLog] = {}
        self._closing = False
        for project, response in store.unfinished():
            self._save(project, msgspec.structs.replace(response, status="failed", error=SHUT_DOWN))

    def start(self, translated: Translated, principal: Principal, *, request_id: str) -> Response:
        """Stores the response as queued and starts running it; returns the queued response. A
        streamed one (`stream: true`) keeps its events for `follow` as it runs."""
        project = principal.project.name
        queued = msgspec.structs.replace(translated.template, status="queued", background=True)
        # Saved before the task exists, so that a retrieve right after this returns finds it.
        self._store.save(project, queued, translated.items)
        events = EventLog() if translated.submission.stream else None
        if events is not None:
            self._live[(project, queued.id)] = events
        task = asyncio.create_task(self._run(project, queued, translated, principal, request_id, events))
        self._tasks[queued.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(queued.id, None))
        return queued

    def follow(self, project: str, response_id: str, starting_after: int | None) -> AsyncIterator[bytes] | None:
        """The events of a streamed background response that still runs, numbered above
        `starting_after`, as they come; None when it is not running (or not streamed)."""
        events = self._live.get((project, response_id))
        return events.follow(starting_after) if events is not None else None

    async def _run(
        self,
        project: str,
        template: Response,
        translated: Translated,
        principal: Principal,
        request_id: str,
        events: EventLog | None,
    ) -> None:
        try:
            if self._gate is not None:
                await self._gate.wait_open()  # stays `queued` while the plan is nearly used up
            self._save(project, msgspec.structs.replace(template, status="in_progress"))
            if events is None:
                outcome = await self._pipeline.run(translated.submission, principal, request_id=request_id)
                if outcome.result is None:  # only a streamed submission gets a stream
                    raise RuntimeError("a plain background response got a stream")
                finished = render_response(outcome.result, template, translated.names, translated.shown)
            else:
                finished = await self._streamed(project, template, translated, principal, request_id, events)
        except asyncio.CancelledError:
            if self._closing:
                self._save(project, msgspec.structs.replace(template, status="failed", error=SHUT_DOWN))
            else:
                self._save(project, msgspec.structs.replace(template, status="cancelled"))
            raise
        except ProxyError as exc:
            finished = msgspec.structs.replace(template, status="failed", error=failure(exc))
        except Exception as exc:  # a bug must still end the response, not leave it in progress
            log.exception("background response %s failed", template.id)
            finished = msgspec.structs.replace(
                template, status="failed", error=ResponseError(code="server_error", message=str(exc))
            )
        finally:
            if events is not None:
                self._keep(project, template.id, events)
        self._save(project, finished)

    async def _streamed(
        self,
        project: str,
        template: Response,
        translated: Translated,
        principal: Principal,
        request_id: str,
        events: EventLog,
    ) -> Response:
        ended: list[Response] = []

        def finished(response: Response) -> None:
            # Stored before the last event goes out: a caller who reads it and retrieves the
            # response finds it finished.
            self._save(project, response)
            ended.append(response)

        start = self._pipeline.run(translated.submission, principal, request_id=request_id)
        async for frame in stream_started(start, template, translated.names, finished, translated.shown):
            events.append(frame)
        if not ended:
            raise RuntimeError("a background stream ended without a last event")
        return ended[-1]

    def _keep(self, project: str, response_id: str, events: EventLog) -> None:
        # Kept in the store before the log is dropped: a stream resuming in between reads either.
        try:
            self._store.keep_events(project, response_id, events.frames)
        except sqlite3.Error as exc:
            log.warning("could not store the events of background response %s: %s", response_id, exc)
        events.end()
        self._live.pop((project, response_id), None)

    def _save(self, project: str, response: Response) -> None:
        try:
            self._store.update(project, response)
        except sqlite3.Error as exc:  # the run goes on; only its stored copy is lost
            log.warning("could not store background response %s: %s", response.id, exc)

    async def cancel(self, project: str, response_id: str) -> Response:
        """Stops a running background response and returns it cancelled. OpenAI's rules: only
        background responses can be cancelled, a finished one cannot, and cancelling a cancelled
        one again returns it unchanged."""
        found = self._store.get(project, response_id)
        if found is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        if not found.background:
            raise InvalidRequest("Cannot cancel a synchronous response.", param="response_id")
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()
            # The task records the outcome itself: cancelled, or finished if it won the race.
            await asyncio.wait([task])
            found = self._store.get(project, response_id) or msgspec.structs.replace(found, status="cancelled")
        if found.status != "cancelled":
            raise InvalidRequest(f"Cannot cancel a response with status '{found.status}'.", param="response_id")
        return found

    async def close(self) -> None:
        """Cancels what still runs; each task marks its response failed before it ends."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
