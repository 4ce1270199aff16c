"""Moves batches through their states and runs their lines, surviving restarts.

One loop task looks at every unfinished batch whenever something changed (or every
`batches.poll_s`). Lines run as tasks, at most `batches.concurrency` at once across all
batches, at batch priority in the CLI pool. A line's result is stored in its row before the
line counts as done, so after a crash the lines that were running simply run again, and the
output files, assembled from the rows, hold each input line exactly once. While the Claude plan
is nearly used up (proxy/plan_gate.py) no new line starts, and the batch says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

import msgspec

from budgets.keys import KeyStore, Principal
from proxy.batches.execute import error_line, execute_line
from proxy.batches.store import BatchStore
from proxy.batches.validate import parse_input
from proxy.batches.wire import BatchError, BatchObject
from proxy.documents import file_reader
from proxy.pipeline import Pipeline
from proxy.plan_gate import PlanGate, PlanWait
from proxy.settings import BatchSettings, ImageSettings

log = logging.getLogger("claude_proxy.batches")


class BatchRunner:
    """Owned by the app's lifespan: `start` resumes interrupted work, `close` stops it cleanly."""

    def __init__(
        self,
        *,
        store: BatchStore,
        keys: KeyStore,
        pipeline: Pipeline,
        settings: BatchSettings,
        images: ImageSettings,
        gate: PlanGate | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.pipeline = pipeline
        self.settings = settings
        self.images = images
        self.gate = gate
        self._waiting: PlanWait | None = None
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._lines: dict[str, set[asyncio.Task[None]]] = {}

    async def start(self) -> None:
        resumed = self.store.requeue_interrupted()
        if resumed:
            log.info("%d batch lines interrupted by a stop will run again", resumed)
        self._loop_task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        tasks = [task for group in self._lines.values() for task in group]
        for task in tasks:
            task.cancel()
        loop = [self._loop_task] if self._loop_task is not None else []
        await asyncio.gather(*tasks, *loop, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def running_lines(self) -> int:
        return sum(len(group) for group in self._lines.values())

    def shown(self, batch: BatchObject) -> BatchObject:
        """`batch` as callers see it: with why it waits, while the plan holds its lines back."""
        if batch.status == "in_progress" and self._waiting is not None:
            return msgspec.structs.replace(batch, waiting=self._waiting)
        return batch

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            self._waiting = self.gate.wait() if self.gate is not None else None
            for batch_id in self.store.active_batch_ids():
                try:
                    self._advance(batch_id)
                except Exception:
                    log.exception("batch %s could not advance", batch_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_s)

    def _advance(self, batch_id: str) -> None:
        row = self.store.batch_row(batch_id)
        if row is None:
            return
        status = row["status"]
        running = self._lines.get(batch_id, set())
        if status == "validating":
            self._validate(row)
        elif status == "in_progress" and time.time() >= row["expires_at"]:
            for task in running:
                task.cancel()  # their lines go back to pending and then into the error file
            if not running:
                self._finish(row, "expired", "batch_expired", "The batch expired before this request ran.")
        elif status == "in_progress":
            if self.store.remaining(batch_id) == 0 and not running:
                self.store.set_status(batch_id, "finalizing")
                self._finish(self.store.batch_row(batch_id) or row, "completed", "", "")
            else:
                self._launch(row)
        elif status == "finalizing":
            self._finish(row, "completed", "", "")
        elif status == "cancelling" and not running:
            self._finish(row, "cancelled", "batch_cancelled", "The batch was cancelled before this request ran.")

    def _validate(self, row: dict[str, Any]) -> None:
        batch_id = row["id"]
        if self.store.get_file(row["project"], row["input_file_id"]) is None:
            self.store.fail_validation(batch_id, [BatchError(code="file_not_found", message="The input file is gone.")])
            return
        content = self.store.read_file(row["input_file_id"])
        lines, errors = parse_input(content, row["endpoint"], max_lines=self.settings.max_lines)
        if errors:
            self.store.fail_validation(batch_id, errors)
            return
        self.store.insert_lines(batch_id, lines)
        self.store.set_status(batch_id, "in_progress")
        self.wake()

    def _launch(self, row: dict[str, Any]) -> None:
        free = self.settings.concurrency - self.running_lines()
        if free <= 0 or self._waiting is not None:
            return  # lines already running finish; new ones wait for a free slot or the plan
        principal = self._principal(row)
        for line in self.store.claim_pending(row["id"], free):
            task = asyncio.create_task(self._run_line(row["id"], row["endpoint"], line, principal))
            group = self._lines.setdefault(row["id"], set())
            group.add(task)
            task.add_done_callback(functools.partial(self._line_done, row["id"]))

    def _line_done(self, batch_id: str, task: asyncio.Task[None]) -> None:
        group = self._lines.get(batch_id)
        if group is not None:
            group.discard(task)
            if not group:
                del self._lines[batch_id]
        self.wake()

    async def _run_line(self, batch_id: str, endpoint: str, line: dict[str, Any], principal: Principal) -> None:
        try:
            outcome = await execute_line(
                endpoint,
                line["custom_id"],
                line["body"],
                principal=principal,
                pipeline=self.pipeline,
                images=self.images,
                files=file_reader(self.store, principal.project.name),
            )
        except asyncio.CancelledError:
            self.store.release_line(batch_id, line["line"])
            raise
        settings = self.settings
        if outcome.retry and (line.get("attempts") or 0) + 1 < settings.max_attempts:
            attempts = self.store.retry_line(batch_id, line["line"])
            # The line keeps its place in the running set while it waits, which also slows the
            # batch down while the cause (a rate limit, Redis, no worker) lasts.
            await asyncio.sleep(min(settings.retry_backoff_s * 2 ** (attempts - 1), 60.0))
            return
        self.store.finish_line(batch_id, line["line"], ok=outcome.ok, result=outcome.line)

    def _principal(self, row: dict[str, Any]) -> Principal:
        keys = self.keys
        project = keys.get_project(row["project"])
        key = keys.get_key(row["key_id"])
        if project is None or key is None:
            raise RuntimeError(f"batch {row['id']} belongs to a project or key that no longer exists")
        return Principal(project=project, key=key)

    def _finish(self, row: dict[str, Any], status: str, code: str, message: str) -> None:
        """Writes the output and error files from the line rows, then the final status."""
        batch_id = row["id"]
        for line in self.store.unfinished(batch_id):
            self.store.finish_line(
                batch_id, line["line"], ok=False, result=error_line(line["custom_id"], code, message)
            )
        for state, column, suffix in (("done", "output_file_id", "output"), ("failed", "error_file_id", "error")):
            if row.get(column):
                continue  # written before a crash; never twice
            lines = list(self.store.results(batch_id, state))
            if lines:
                content = ("\n".join(lines) + "\n").encode()
                self.store.add_file(
                    row["project"],
                    f"{batch_id}_{suffix}.jsonl",
                    "batch_output",
                    content,
                    batch_column=(batch_id, column),
                )
        self.store.set_status(batch_id, status)
        log.info("batch %s %s", batch_id, status)
