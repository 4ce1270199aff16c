"""proxy.documents and core.documents: files as document blocks, within Anthropic's limits."""

from __future__ import annotations

import asyncio
import base64
import zlib

import pytest

import core.documents
from budgets.admission import PDF_PAGE_TOKENS, counted_prompt_tokens
from core.documents import pdf_pages
from core.errors import InvalidRequest
from core.types import CompletionJob, DocumentBlock, DocumentSource
from proxy.documents import MAX_DOCUMENT_BYTES, Documents, StoredFile, load_files
from tests.support.pdf import compressed_pdf, tiny_pdf


def test_the_page_count_comes_from_the_page_tree():
    assert pdf_pages(tiny_pdf("a", "b", "c")) == 3
    assert pdf_pages(b"%PDF-1.7\n<< /Type /Page >> << /Type /Page >>") == 2
    assert pdf_pages(b"%PDF-1.7\nnothing readable") is None


def test_the_page_tree_is_read_from_compressed_object_streams():
    pdf = compressed_pdf("one", "two", "three")
    assert b"/Page" not in pdf  # nothing about the pages is readable without inflating
    assert pdf_pages(pdf) == 3
    inflated = list(core.documents._object_streams(pdf))
    assert [count for part in inflated for count in core.documents._page_tree_counts(part)] == [3]
    assert pdf_pages(compressed_pdf(*["p"] * 101)) == 101


def test_the_reservation_counts_every_page_of_a_compressed_pdf():
    data = base64.b64encode(compressed_pdf("a", "b", "c", "d")).decode()
    document = DocumentBlock(source=DocumentSource("base64", "application/pdf", data))
    job = CompletionJob(model="sonnet", system="", history=[], prompt=[document])
    assert counted_prompt_tokens(job) == 4 * PDF_PAGE_TOKENS


def test_only_the_page_tree_nodes_own_count_counts():
    nodes = (
        b"1 0 obj << /Type /Outlines /Count 40 >> endobj\n"
        b"2 0 obj << /Count 7 /Kids [3 0 R] /Resources << /Count 99 >> /Hex <ab>>> endobj\n"
        b"3 0 obj << /Kids [4 0 R] /Parent 2 0 R /Count 5 /Type /Pages /Resources << /Count 98 >> >> endobj\n"
    )
    # Object 2 is no page tree node (its /Type is missing); object 3's /Count follows its /Type.
    assert pdf_pages(b"%PDF-1.7\n" + nodes) == 5
    root = b"8 0 obj << /Count 12 /Kids [2 0 R] /Resources << /Count 97 >> /Type /Pages >> endobj\n"
    assert pdf_pages(b"%PDF-1.7\n" + nodes + root) == 12


def test_object_streams_are_inflated_within_a_bound(monkeypatch):
    monkeypatch.setattr(core.documents, "_MAX_INFLATED", 4096)
    bomb = zlib.compress(b"\0" * 1_000_000)
    unreadable = b"1 0 obj << /Type /ObjStm /Filter /LZWDecode /Length 5 >>\nstream\nnot z\nendstream endobj\n"
    pdf = b"%PDF-1.5\n" + unreadable + b"2 0 obj << /Type /ObjStm /Length 9 >>\nstream\n" + bomb + b"\nendstream"
    assert sum(len(part) for part in core.documents._object_streams(pdf)) == 4096
    assert pdf_pages(pdf) is None
    # Past the bound, a later object stream is not read.
    assert pdf_pages(pdf + compressed_pdf("a", "b")) is None
    monkeypatch.setattr(core.documents, "_MAX_INFLATED", 16 * 1024 * 1024)
    assert pdf_pages(pdf + compressed_pdf("a", "b")) == 2


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
