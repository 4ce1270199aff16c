"""Stored responses (`store: true`) in SQLite, one row per response, per project.

A row keeps the response object and its input items. `previous_response_id` chains rows: the
conversation before a request is every earlier row's input and output items, oldest first,
found by walking the chain back. Every lookup takes the owning project: another project's
ids simply do not exist for it.

`response_items` indexes the ids of every stored input and output item by (project, item id),
so that an `item_reference` finds its response without reading the project's rows. An id the
caller gave two items (ids are the caller's own for input) names the one stored last.
"""

from __future__ import annotations

import time

import msgspec
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
        if "events" not in db.table("responses").columns_dict:
            # The SSE frames of a streamed background response, as a JSON list of strings.
            db.table("responses").add_column("events", str)
        if "response_items" not in db.table_names():
            with db.conn:
                db.execute(
                    "create table response_items (project text not null, item_id text not null,"
                    " response_id text not null, primary key (project, item_id))"
                )
                db.execute("create index response_items_response on response_items (response_id)")
                # Responses stored before the index existed: their items become referable too.
                for path in ("input_items", "json_extract(response, '$.output')"):
                    db.execute(
                        "insert or replace into response_items select r.project, json_extract(j.value, '$.id'), r.id"
                        f" from responses r, json_each({path}) j where json_extract(j.value, '$.id') is not null"
                    )

    def _index(self, project: str, response_id: str, items: list[Item]) -> None:
        self.db.conn.executemany(
            "insert or replace into response_items (project, item_id, response_id) values (?, ?, ?)",
            [(project, item.id, response_id) for item in items if item.id],
        )

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
            self._index(project, response.id, items + list(response.output))

    def update(self, project: str, response: Response) -> bool:
        """Replaces a stored response object, keeping its input; False when it is not stored
        (a background response deleted while it ran stays deleted)."""
        with self.db.conn:
            cursor = self.db.execute(
                "update responses set response = ? where id = ? and project = ?",
                [encoder.encode(response).decode(), response.id, project],
            )
            if cursor.rowcount > 0:
                self._index(project, response.id, list(response.output))
        return cursor.rowcount > 0

    def keep_events(self, project: str, response_id: str, frames: list[bytes]) -> None:
        """Keeps the frames a streamed background response sent, for streams that resume it."""
        with self.db.conn:
            self.db.execute(
                "update responses set events = ? where id = ? and project = ?",
                [msgspec.json.encode([frame.decode() for frame in frames]).decode(), response_id, project],
            )

    def events(self, project: str, response_id: str) -> list[bytes] | None:
        """The kept frames of a streamed background response; None for any other response."""
        row = self._row(project, response_id)
        if row is None or row.get("events") is None:
            return None
        return [frame.encode() for frame in msgspec.json.decode(row["events"], type=list[str])]

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
            self.db.execute("delete from response_items where project = ? and response_id = ?", [project, response_id])
        return cursor.rowcount > 0

    def item(self, project: str, item_id: str) -> Item | None:
        """The stored input or output item `item_id` of one of the project's responses."""
        found = self.db.execute(
            "select response_id from response_items where project = ? and item_id = ?", [project, item_id]
        ).fetchone()
        row = self._row(project, found[0]) if found else None
        if row is None:
            return None
        items = items_decoder.decode(row["input_items"]) + list(response_decoder.decode(row["response"]).output)
        return next((item for item in items if item.id == item_id), None)

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
