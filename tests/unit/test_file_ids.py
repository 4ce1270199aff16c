"""File parts given by `file_id` on every surface that takes file parts: the reader of the
project's own uploads, and batch lines (chat and Responses) reading through it."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from budgets.database import open_database
from budgets.keys import ApiKey, Principal, Project
from core.errors import UpstreamError
from core.types import DocumentBlock, DocumentSource
from proxy.batches.execute import execute_line
from proxy.batches.store import BatchStore
from proxy.documents import StoredFile, file_reader
from proxy.pipeline import Pipeline, Submission
from proxy.settings import ImageSettings

PRINCIPAL = Principal(project=Project(name="alpha"), key=ApiKey(id=1, project="alpha", prefix="sk-a", created_at=0))


class _RecordingPipeline:
    """Keeps what reached the pipeline, then fails the run: the translation is what is tested."""

    def __init__(self) -> None:
        self.submissions: list[Submission] = []

    async def run(self, submission: Submission, principal: Principal, **_: Any) -> Any:
        self.submissions.append(submission)
        raise UpstreamError("recorded")


@pytest.fixture()
def store(tmp_path):
    db = open_database(tmp_path / "data")
    yield BatchStore(db, tmp_path / "data")
    db.close()


def _run(endpoint: str, body: dict, store: BatchStore, pipeline: _RecordingPipeline) -> dict:
    outcome = asyncio.run(
        execute_line(
            endpoint,
            "line-1",
            json.dumps(body),
            principal=PRINCIPAL,
            pipeline=cast(Pipeline, pipeline),
            images=ImageSettings(),
            files=file_reader(store, "alpha"),
        )
    )
    return json.loads(outcome.line)["response"]


def _chat(file: dict) -> dict:
    content = [{"type": "file", "file": file}, {"type": "text", "text": "read it"}]
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}


def test_the_reader_sees_only_the_projects_own_files(store):
    mine = store.add_file("alpha", "notes.txt", "user_data", b"mine")
    theirs = store.add_file("beta", "secret.txt", "user_data", b"theirs")
    read = file_reader(store, "alpha")
    assert asyncio.run(read(mine.id)) == StoredFile("notes.txt", "user_data", b"mine")
    assert asyncio.run(read(theirs.id)) is None
    assert asyncio.run(read("file-missing")) is None


def test_a_chat_batch_line_reads_a_file_id_as_a_document(store):
    uploaded = store.add_file("alpha", "notes.txt", "assistants", b"Buy milk.")
    pipeline = _RecordingPipeline()
    response = _run("/v1/chat/completions", _chat({"file_id": uploaded.id}), store, pipeline)
    assert response["status_code"] == 502  # the recording pipeline's failure: the line got that far
    (submission,) = pipeline.submissions
    assert submission.prompt[0] == DocumentBlock(
        source=DocumentSource("text", "text/plain", "Buy milk."), title="notes.txt"
    )


def test_a_responses_batch_line_reads_a_file_id_as_a_document(store):
    uploaded = store.add_file("alpha", "memo.md", "user_data", b"# Memo")
    pipeline = _RecordingPipeline()
    content = [{"type": "input_file", "file_id": uploaded.id}, {"type": "input_text", "text": "read it"}]
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": content}]}
    _run("/v1/responses", body, store, pipeline)
    (submission,) = pipeline.submissions
    assert submission.prompt[0] == DocumentBlock(source=DocumentSource("text", "text/plain", "# Memo"), title="memo.md")


def test_a_batch_lines_bad_file_id_is_that_lines_400(store):
    wrong_purpose = store.add_file("alpha", "in.jsonl", "batch", b"{}\n")
    elsewhere = store.add_file("beta", "theirs.txt", "user_data", b"theirs")
    pipeline = _RecordingPipeline()
    for file_id, code in (
        ("file-missing", "invalid_file_id"),
        (wrong_purpose.id, "invalid_file_purpose"),
        (elsewhere.id, "invalid_file_id"),  # another project's file is not found
    ):
        response = _run("/v1/chat/completions", _chat({"file_id": file_id}), store, pipeline)
        assert response["status_code"] == 400
        error = response["body"]["error"]
        assert (error["code"], error["param"]) == (code, "messages[0].content[0].file.file_id")
    assert pipeline.submissions == []
