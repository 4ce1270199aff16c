"""`claude-proxy batches list|show|cancel` over a database written by the store."""

from __future__ import annotations

from budgets.database import open_database
from proxy.batches.store import BatchStore
from proxy.cli import main


def _setup(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\n")
    db = open_database(tmp_path / "data")
    store = BatchStore(db, tmp_path / "data")
    source = store.add_file("alpha", "in.jsonl", "batch", b"{}\n")
    batch = store.add_batch(
        project="alpha",
        key_id=1,
        endpoint="/v1/chat/completions",
        input_file_id=source.id,
        completion_window="24h",
        completion_window_s=86400,
        metadata=None,
    )
    store.insert_lines(batch.id, [(1, "a", "{}"), (2, "b", "{}"), (3, "c", "{}"), (4, "d", "{}")])
    store.set_status(batch.id, "in_progress")
    store.claim_pending(batch.id, 1)
    store.finish_line(batch.id, 1, ok=True, result=b"{}")
    db.close()
    return config, batch.id


def test_list_and_show_display_progress(tmp_path, capsys):
    config, batch_id = _setup(tmp_path)
    assert main(["batches", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert batch_id in listed and "alpha" in listed and "in_progress" in listed and "1/4 (25%)" in listed
    assert main(["batches", "show", batch_id, "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "completed=1 failed=0" in shown and "#######" in shown


def test_cancel_marks_the_batch_cancelling(tmp_path, capsys):
    config, batch_id = _setup(tmp_path)
    assert main(["batches", "cancel", batch_id, "--config", str(config)]) == 0
    assert main(["batches", "show", batch_id, "--config", str(config)]) == 0
    assert "status=cancelling" in capsys.readouterr().out
    assert main(["batches", "show", "batch_nope", "--config", str(config)]) == 1
