"""Stored responses (`store: true`) in SQLite, one row per response, per project.

A row keeps the response object and its input items. `previous_response_id` chains rows: the
conversation before a request is every earlier row's input and output items, oldest first,
found by walking the chain back. Every lookup takes the owning project: another project's
ids simply do not exist for it.
"""

from __future__ import annotations

import time

import sqlite_utils

from proxy.wire.responses import Item, Response, encoder, items_decoder, response_decoder

MAX_CHAIN = 10_000  # a bound on the walk back, against a cycle no API call can make


class ResponseStore:
    """The `responses` table; opened on the same database as the keys and the ledger."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        if "responses" not in db.table_names():
            db.table("responses").create(
                {
                    "id": str,
                    "project": str,
                    "previous_response_id": str,
                    "created_at": int,
                    "response": str,  # the response object, as JSON
                    "input_items": str,  # the request's input items, as JSON
                },
                pk="id",
            )
            db.table("responses").create_index(["project", "created_at"])

    def save(self, project: str, response: Response, items: list[Item]) -> None:
        with self.db.conn:
            self.db.execute(
                "insert or replace into responses (id, project, previous_response_id, created_at, response, input_items)"
                " values (?, ?, ?, ?, ?, ?)",
                [
                    response.id,
                    project,
                    response.previous_response_id,
                    int(time.time()),
                    encoder.encode(response).decode(),
                    encoder.encode(items).decode(),
                ],
            )

    def update(self, project: str, response: Response) -> bool:
        """Replaces a stored response object, keeping its input; False when it is not stored
        (a background response deleted while it ran stays deleted)."""
        with self.db.conn:
            cursor = self.db.execute(
                "update responses set response = ? where id = ? and project = ?",
                [encoder.encode(response).decode(), response.id, project],
            )
        return cursor.rowcount > 0

    def unfinished(self) -> list[tuple[str, Response]]:
        """(project, response) of every stored response still queued or in progress."""
        rows = self.db.execute(
            "select project, response from responses"
            " where json_extract(response, '$.status') in ('queued', 'in_progress')"
        ).fetchall()
        return [(project, response_decoder.decode(raw)) for project, raw in rows]

    def _row(self, project: str, response_id: str) -> dict | None:
        rows = list(self.db["responses"].rows_where("id = ? and project = ?", [response_id, project]))
        return rows[0] if rows else None

    def get(self, project: str, response_id: str) -> Response | None:
        row = self._row(project, response_id)
        return response_decoder.decode(row["response"]) if row else None

    def input_items(self, project: str, response_id: str) -> list[Item] | None:
        row = self._row(project, response_id)
        return items_decoder.decode(row["input_items"]) if row else None

    def delete(self, project: str, response_id: str) -> bool:
        with self.db.conn:
            cursor = self.db.execute("delete from responses where id = ? and project = ?", [response_id, project])
        return cursor.rowcount > 0

    def conversation(self, project: str, response_id: str) -> list[Item] | None:
        """Every item up to and including `response_id`'s output, oldest first; None when that
        response is not stored. A deleted response earlier in the chain ends the walk there:
        the conversation then begins after it."""
        row = self._row(project, response_id)
        if row is None:
            return None
        segments: list[list[Item]] = []
        seen: set[str] = set()
        while row is not None and row["id"] not in seen and len(seen) < MAX_CHAIN:
            seen.add(row["id"])
            response = response_decoder.decode(row["response"])
            segments.append(items_decoder.decode(row["input_items"]) + list(response.output))
            previous = row["previous_response_id"]
            row = self._row(project, previous) if previous else None
        return [item for segment in reversed(segments) for item in segment]
