"""Files, batches and batch lines in SQLite; file contents on disk under `storage.path/files`.

Every lookup takes the owning project: another project's ids simply do not exist for it.
Batch lines carry their own state and result, so a batch survives a crash at any point and
its output is assembled from the table, one row per input line, exactly once.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import sqlite_utils

from proxy.batches.wire import BatchError, BatchErrors, BatchObject, FileObject, RequestCounts

_encoder = msgspec.json.Encoder()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class BatchStore:
    """The tables of the Files and Batches APIs. Opened on the same database as the keys and the ledger."""

    def __init__(self, db: sqlite_utils.Database, storage_path: str | Path) -> None:
        self.db = db
        self.blobs = Path(storage_path) / "files"
        self.blobs.mkdir(parents=True, exist_ok=True)
        tables = set(db.table_names())
        if "files" not in tables:
            db.table("files").create(
                {"id": str, "project": str, "filename": str, "purpose": str, "bytes": int, "created_at": int},
                pk="id",
            )
            db.table("files").create_index(["project", "created_at"])
        if "batches" not in tables:
            db.table("batches").create(
                {
                    "id": str,
                    "project": str,
                    "key_id": int,
                    "endpoint": str,
                    "input_file_id": str,
                    "completion_window": str,
                    "status": str,
                    "created_at": int,
                    "expires_at": int,
                    "in_progress_at": int,
                    "finalizing_at": int,
                    "completed_at": int,
                    "failed_at": int,
                    "expired_at": int,
                    "cancelling_at": int,
                    "cancelled_at": int,
                    "output_file_id": str,
                    "error_file_id": str,
                    "errors": str,
                    "metadata": str,
                },
                pk="id",
            )
            db.table("batches").create_index(["project", "created_at"])
        if "batch_lines" not in tables:
            db.table("batch_lines").create(
                {
                    "batch_id": str,
                    "line": int,
                    "custom_id": str,
                    "body": str,
                    "state": str,  # pending | running | done | failed
                    "result": str,  # the output or error line, as JSON
                    "finished_at": float,
                    "attempts": int,
                },
                pk=("batch_id", "line"),
            )
            db.table("batch_lines").create_index(["batch_id", "state"])
        elif "attempts" not in db["batch_lines"].columns_dict:
            db.table("batch_lines").add_column("attempts", int)

    # Files

    def blob_path(self, file_id: str) -> Path:
        return self.blobs / file_id

    def part_path(self, file_id: str) -> Path:
        """Where a file's contents are written before `record_file` moves them into place."""
        return self.blobs / (file_id + ".part")

    def add_file(
        self, project: str, filename: str, purpose: str, content: bytes, *, batch_column: tuple[str, str] | None = None
    ) -> FileObject:
        file_id = new_id("file-")
        self.part_path(file_id).write_bytes(content)
        return self.record_file(file_id, project, filename, purpose, len(content), batch_column=batch_column)

    def record_file(
        self,
        file_id: str,
        project: str,
        filename: str,
        purpose: str,
        size: int,
        *,
        batch_column: tuple[str, str] | None = None,
    ) -> FileObject:
        """Moves the complete `part_path(file_id)` into place and records the file; with
        `batch_column` (batch id, column) the batch records it in the same transaction, so a crash
        can neither lose the file nor leave a second copy behind."""
        os.replace(self.part_path(file_id), self.blob_path(file_id))  # the row never points at a half-written file
        row = {
            "id": file_id,
            "project": project,
            "filename": filename,
            "purpose": purpose,
            "bytes": size,
            "created_at": int(time.time()),
        }
        with self.db.conn:
            self.db.execute(
                "insert into files (id, project, filename, purpose, bytes, created_at) values (?, ?, ?, ?, ?, ?)",
                list(row.values()),
            )
            if batch_column is not None:
                batch_id, column = batch_column
                if column not in ("output_file_id", "error_file_id"):
                    raise ValueError(column)
                self.db.execute(f"update batches set {column} = ? where id = ?", [file_id, batch_id])
        return _file(row)

    def get_file(self, project: str, file_id: str) -> FileObject | None:
        rows = list(self.db["files"].rows_where("id = ? and project = ?", [file_id, project]))
        return _file(rows[0]) if rows else None

    def list_files(
        self, project: str, *, purpose: str | None, limit: int, order: str, after: str | None
    ) -> tuple[list[FileObject], bool]:
        where = ["project = ?"]
        args: list[str | int] = [project]
        if purpose:
            where.append("purpose = ?")
            args.append(purpose)
        # rowid follows insertion, so it orders files created within the same second too.
        anchor = self._rowid("files", after, project) if after else None
        if anchor is not None:
            where.append("rowid < ?" if order == "desc" else "rowid > ?")
            args.append(anchor)
        direction = "desc" if order == "desc" else "asc"
        rows = list(
            self.db["files"].rows_where(" and ".join(where), args, order_by=f"rowid {direction}", limit=limit + 1)
        )
        return [_file(row) for row in rows[:limit]], len(rows) > limit

    def read_file(self, file_id: str) -> bytes:
        return self.blob_path(file_id).read_bytes()

    def delete_file(self, project: str, file_id: str) -> bool:
        if self.get_file(project, file_id) is None:
            return False
        self.db.table("files").delete(file_id)
        self.blob_path(file_id).unlink(missing_ok=True)
        return True

    # Batches

    def add_batch(
        self,
        *,
        project: str,
        key_id: int,
        endpoint: str,
        input_file_id: str,
        completion_window_s: int,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchObject:
        now = int(time.time())
        batch_id = new_id("batch_")
        row = {
            "id": batch_id,
            "project": project,
            "key_id": key_id,
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": "validating",
            "created_at": now,
            "expires_at": now + completion_window_s,
            "metadata": _encoder.encode(metadata).decode() if metadata is not None else None,
        }
        self.db.table("batches").insert(row, alter=False)
        return self.get_batch(project, batch_id)  # type: ignore[return-value]  # just inserted: never None

    def batch_row(self, batch_id: str) -> dict[str, Any] | None:
        rows = list(self.db["batches"].rows_where("id = ?", [batch_id]))
        return rows[0] if rows else None

    def get_batch(self, project: str, batch_id: str) -> BatchObject | None:
        row = self.batch_row(batch_id)
        if row is None or row["project"] != project:
            return None
        return self.to_object(row)

    def list_batches(self, project: str, *, limit: int, after: str | None) -> tuple[list[BatchObject], bool]:
        where = "project = ?"
        args: list[str | int] = [project]
        anchor = self._rowid("batches", after, project) if after else None
        if anchor is not None:
            where += " and rowid < ?"
            args.append(anchor)
        rows = list(self.db["batches"].rows_where(where, args, order_by="rowid desc", limit=limit + 1))
        return [self.to_object(row) for row in rows[:limit]], len(rows) > limit

    def recent_batches(self, limit: int) -> list[tuple[str, BatchObject]]:
        """The latest batches of every project, newest first, each with its project (the dashboard's view)."""
        rows = list(self.db["batches"].rows_where(order_by="rowid desc", limit=limit))
        return [(row["project"], self.to_object(row)) for row in rows]

    def _rowid(self, table: str, item_id: str, project: str) -> int | None:
        row = self.db.execute(f"select rowid from {table} where id = ? and project = ?", [item_id, project]).fetchone()
        return row[0] if row else None

    def active_batch_ids(self) -> list[str]:
        rows = self.db.execute(
            "select id from batches where status in ('validating', 'in_progress', 'finalizing', 'cancelling') "
            "order by rowid"
        ).fetchall()
        return [row[0] for row in rows]

    def set_status(self, batch_id: str, status: str, **fields: Any) -> None:
        stamp = f"{status}_at"
        values: dict[str, Any] = {"status": status, **fields}
        if stamp in {
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        }:
            values.setdefault(stamp, int(time.time()))
        self.db.table("batches").update(batch_id, values)

    def fail_validation(self, batch_id: str, errors: list[BatchError]) -> None:
        payload = _encoder.encode(BatchErrors(data=errors)).decode()
        self.set_status(batch_id, "failed", errors=payload)

    # Lines

    def insert_lines(self, batch_id: str, lines: list[tuple[int, str, str]]) -> None:
        """(line number, custom_id, body JSON) for every input line; replaces any earlier attempt."""
        with self.db.conn:
            self.db.execute("delete from batch_lines where batch_id = ?", [batch_id])
            self.db.table("batch_lines").insert_all(
                (
                    {
                        "batch_id": batch_id,
                        "line": n,
                        "custom_id": cid,
                        "body": body,
                        "state": "pending",
                        "result": None,
                        "finished_at": None,
                        "attempts": 0,
                    }
                    for n, cid, body in lines
                ),
                batch_size=500,
            )

    def requeue_interrupted(self) -> int:
        """Lines that were running when the process died run again; their result is not stored yet."""
        cursor = self.db.execute("update batch_lines set state = 'pending' where state = 'running'")
        self.db.conn.commit()
        return cursor.rowcount

    def claim_pending(self, batch_id: str, limit: int) -> list[dict[str, Any]]:
        rows = list(
            self.db["batch_lines"].rows_where(
                "batch_id = ? and state = 'pending'", [batch_id], order_by="line", limit=limit
            )
        )
        with self.db.conn:
            for row in rows:
                self.db.execute(
                    "update batch_lines set state = 'running' where batch_id = ? and line = ?",
                    [batch_id, row["line"]],
                )
        return rows

    def finish_line(self, batch_id: str, line: int, *, ok: bool, result: bytes) -> None:
        with self.db.conn:
            self.db.execute(
                "update batch_lines set state = ?, result = ?, finished_at = ? where batch_id = ? and line = ?",
                ["done" if ok else "failed", result.decode(), time.time(), batch_id, line],
            )

    def retry_line(self, batch_id: str, line: int) -> int:
        """Back to pending after a transient failure; returns the attempts made so far."""
        with self.db.conn:
            self.db.execute(
                "update batch_lines set state = 'pending', attempts = coalesce(attempts, 0) + 1 "
                "where batch_id = ? and line = ?",
                [batch_id, line],
            )
        row = self.db.execute(
            "select attempts from batch_lines where batch_id = ? and line = ?", [batch_id, line]
        ).fetchone()
        return int(row[0])

    def release_line(self, batch_id: str, line: int) -> None:
        """A line stopped before its result was stored goes back to pending."""
        with self.db.conn:
            self.db.execute(
                "update batch_lines set state = 'pending' where batch_id = ? and line = ? and state = 'running'",
                [batch_id, line],
            )

    def counts(self, batch_id: str) -> RequestCounts:
        rows = self.db.execute(
            "select state, count(*) from batch_lines where batch_id = ? group by state", [batch_id]
        ).fetchall()
        by_state = dict(rows)
        return RequestCounts(
            total=sum(by_state.values()), completed=by_state.get("done", 0), failed=by_state.get("failed", 0)
        )

    def remaining(self, batch_id: str) -> int:
        row = self.db.execute(
            "select count(*) from batch_lines where batch_id = ? and state in ('pending', 'running')", [batch_id]
        ).fetchone()
        return int(row[0])

    def results(self, batch_id: str, state: str) -> Iterator[str]:
        for row in self.db.execute(
            "select result from batch_lines where batch_id = ? and state = ? order by line", [batch_id, state]
        ):
            yield row[0]

    def unfinished(self, batch_id: str) -> list[dict[str, Any]]:
        return list(
            self.db["batch_lines"].rows_where(
                "batch_id = ? and state in ('pending', 'running')", [batch_id], order_by="line"
            )
        )

    def to_object(self, row: dict[str, Any]) -> BatchObject:
        errors = msgspec.json.decode(row["errors"], type=BatchErrors) if row.get("errors") else None
        metadata = msgspec.json.decode(row["metadata"]) if row.get("metadata") else None
        return BatchObject(
            id=row["id"],
            endpoint=row["endpoint"],
            input_file_id=row["input_file_id"],
            completion_window=row["completion_window"],
            status=row["status"],
            created_at=row["created_at"],
            errors=errors,
            output_file_id=row.get("output_file_id"),
            error_file_id=row.get("error_file_id"),
            in_progress_at=row.get("in_progress_at"),
            expires_at=row.get("expires_at"),
            finalizing_at=row.get("finalizing_at"),
            completed_at=row.get("completed_at"),
            failed_at=row.get("failed_at"),
            expired_at=row.get("expired_at"),
            cancelling_at=row.get("cancelling_at"),
            cancelled_at=row.get("cancelled_at"),
            request_counts=self.counts(row["id"]),
            metadata=metadata,
        )


def _file(row: dict[str, Any]) -> FileObject:
    return FileObject(
        id=row["id"],
        bytes=row["bytes"],
        created_at=row["created_at"],
        filename=row["filename"],
        purpose=row["purpose"],
    )
