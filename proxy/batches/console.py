"""`claude-proxy batches list|show|cancel`: the operator's view of batches, from the database."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from budgets.database import open_database
from proxy.batches.store import BatchStore
from proxy.batches.wire import TERMINAL, BatchObject
from proxy.settings import Settings

_BAR = 30


def progress_bar(batch: BatchObject) -> str:
    counts = batch.request_counts
    done = counts.completed + counts.failed
    share = done / counts.total if counts.total else (1.0 if batch.status in TERMINAL else 0.0)
    filled = int(share * _BAR)
    return f"[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{counts.total} ({share:.0%})"


def describe(batch: BatchObject, project: str) -> str:
    counts = batch.request_counts
    lines = [
        f"{batch.id}  project={project}  status={batch.status}",
        f"  {progress_bar(batch)}  completed={counts.completed} failed={counts.failed}",
        f"  input={batch.input_file_id}  output={batch.output_file_id or '-'}  errors={batch.error_file_id or '-'}",
    ]
    if batch.errors is not None:
        lines += [f"  error line {e.line}: {e.code}: {e.message}" for e in batch.errors.data[:10]]
    return "\n".join(lines)


def run_batches_command(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    db = open_database(settings.storage.path)
    try:
        store = BatchStore(db, settings.storage.path)
        if args.batches_command == "list":
            where, params = ("project = ?", [args.project]) if args.project else (None, None)
            rows = db["batches"].rows_where(where, params, order_by="rowid desc", limit=args.limit)
            for listed in rows:
                batch = store.to_object(listed)
                out.write(f"{batch.id}\t{listed['project']}\t{batch.status}\t{progress_bar(batch)}\n")
            return 0
        row = store.batch_row(args.batch_id)
        if row is None:
            sys.stderr.write(f"claude-proxy: no batch {args.batch_id}\n")
            return 1
        if args.batches_command == "cancel":
            if row["status"] in TERMINAL or row["status"] == "finalizing":
                sys.stderr.write(f"claude-proxy: batch {args.batch_id} is {row['status']}\n")
                return 1
            store.set_status(args.batch_id, "cancelling")
            out.write(f"{args.batch_id} cancelling\n")
            return 0
        while True:
            row = store.batch_row(args.batch_id) or row
            batch = store.to_object(row)
            out.write(describe(batch, row["project"]) + "\n")
            if not args.watch or batch.status in TERMINAL:
                return 0
            out.flush()
            time.sleep(settings.batches.poll_s)
    finally:
        db.close()
