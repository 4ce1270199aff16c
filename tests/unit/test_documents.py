"""proxy.documents and core.documents: files as document blocks, within Anthropic's limits."""

from __future__ import annotations

import asyncio
import base64

import pytest

from core.documents import pdf_pages
from core.errors import InvalidRequest
from core.types import DocumentBlock, DocumentSource
from proxy.documents import MAX_DOCUMENT_BYTES, Documents, StoredFile, load_files
from tests.support.pdf import tiny_pdf


def test_the_page_count_comes_from_the_page_tree():
    assert pdf_pages(tiny_pdf("a", "b", "c")) == 3
    assert pdf_pages(b"%PDF-1.7\n<< /Type /Page >> << /Type /Page >>") == 2
    assert pdf_pages(b"%PDF-1.7\nnothing readable") is None


def test_data_urls_bare_base64_and_stored_files_become_blocks():
    pdf = tiny_pdf("x")
    docs = Documents({"file-1": StoredFile("n.md", "user_data", b"# Notes")})
    url = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    assert docs.from_data(url, None, "p").source == DocumentSource(
        "base64", "application/pdf", base64.b64encode(pdf).decode()
    )
    # Bare base64: the type comes from the bytes or the file name.
    assert docs.from_data(base64.b64encode(pdf).decode(), None, "p").source.media_type == "application/pdf"
    assert docs.from_data(base64.b64encode(b"hi").decode(), "a.txt", "p") == DocumentBlock(
        source=DocumentSource("text", "text/plain", "hi"), title="a.txt"
    )
    assert docs.from_file_id("file-1", "p").source == DocumentSource("text", "text/plain", "# Notes")


def test_the_limits_count_over_the_whole_request():
    docs = Documents()
    for _ in range(2):
        docs.block(tiny_pdf(*["p"] * 50), media_type=None, filename="a.pdf", param="first")
    with pytest.raises(InvalidRequest) as info:
        docs.block(tiny_pdf("one more"), media_type=None, filename="b.pdf", param="third")
    assert (info.value.code, info.value.param) == ("too_many_pages", "third")
    big = Documents()
    with pytest.raises(InvalidRequest) as info:
        big.block(b"x" * (MAX_DOCUMENT_BYTES + 1), media_type="text/plain", filename=None, param="big")
    assert info.value.code == "file_too_large"


def test_files_by_id_must_exist_and_be_meant_for_the_model():
    files = {"file-a": StoredFile("a.txt", "assistants", b"a"), "file-b": StoredFile("b.jsonl", "batch", b"{}")}

    async def reader(file_id: str) -> StoredFile | None:
        return files.get(file_id)

    assert asyncio.run(load_files([("file-a", "p")], reader)) == {"file-a": files["file-a"]}
    for file_id, code in (("file-b", "invalid_file_purpose"), ("file-x", "invalid_file_id")):
        with pytest.raises(InvalidRequest) as info:
            asyncio.run(load_files([(file_id, "q")], reader))
        assert (info.value.code, info.value.param) == (code, "q")
