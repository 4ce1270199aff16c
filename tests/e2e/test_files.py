"""The Files API over a real socket: names that once broke the download header, and large uploads."""

from __future__ import annotations

import io
import random
from urllib.parse import unquote

import httpx
import openai
import pytest

from budgets.database import open_database
from proxy.batches.store import BatchStore
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def _multipart(filename: bytes, content: bytes, boundary: bytes = b"b0undary") -> tuple[bytes, dict[str, str]]:
    """A form built by hand, so a filename can hold bytes no client library would send."""
    body = b"".join(
        [
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n",
            b"--" + boundary + b"--\r\n",
        ]
    )
    return body, {"content-type": "multipart/form-data; boundary=" + boundary.decode()}


# httpx sends \n and \r as %0A and %0D (WHATWG form encoding), which the server decodes back.
@pytest.mark.parametrize(
    ("name", "clean"),
    [("a\nb.txt", "ab.txt"), ("a\r\nb.txt", "ab.txt"), ('a"b.txt', 'a"b.txt'), ("../../x", "x"), ("é.txt", "é.txt")],
)
def test_download_of_a_hostile_name_is_a_valid_response(server, name, clean):
    created = httpx.post(
        server.base_url + "/files",
        headers=server.headers,
        data={"purpose": "batch"},
        files={"file": (name, b"payload\n")},
    )
    assert created.status_code == 200, created.text
    assert created.json()["filename"] == clean
    download = httpx.get(server.base_url + f"/files/{created.json()['id']}/content", headers=server.headers)
    assert download.status_code == 200 and download.content == b"payload\n"
    # One quoted ASCII fallback, then the exact name percent-encoded when the fallback differs.
    disposition, fallback, *extended = download.headers["content-disposition"].split("; ")
    assert disposition == "attachment"
    assert fallback.startswith('filename="') and fallback.endswith('"') and fallback.count('"') == 2
    assert fallback.isascii() and "\\" not in fallback
    if fallback == f'filename="{clean}"':
        assert extended == []
    else:
        [exact] = extended
        assert exact.startswith("filename*=UTF-8''") and unquote(exact.removeprefix("filename*=UTF-8''")) == clean


def test_a_name_stored_before_names_were_cleaned_still_downloads(server):
    # Rows written by an older version keep their raw name: the header is encoded on the way out.
    db = open_database(server.storage)
    try:
        stored = BatchStore(db, server.storage).add_file("test-project", 'old\n"name\r\x00.txt', "batch", b"kept")
    finally:
        db.close()
    download = httpx.get(server.base_url + f"/files/{stored.id}/content", headers=server.headers)
    assert download.status_code == 200 and download.content == b"kept"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"old__name__.txt\"; filename*=UTF-8''old%0A%22name%0D%00.txt"
    )


@pytest.mark.parametrize(("raw", "clean"), [(b"nul\x00.txt", "nul.txt"), (b"cr\r.txt", "cr.txt")])
def test_raw_control_bytes_in_a_filename_are_dropped(server, raw, clean):
    body, headers = _multipart(raw, b"x")
    created = httpx.post(server.base_url + "/files", headers={**server.headers, **headers}, content=body)
    assert created.status_code == 200, created.text
    assert created.json()["filename"] == clean
    download = httpx.get(server.base_url + f"/files/{created.json()['id']}/content", headers=server.headers)
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{clean}"'


LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_server(cli_binary, upstream_server, tmp_path_factory):
    """A server whose uploads may be at most LIMIT bytes."""
    running = RunningServer(
        tmp_path_factory.mktemp("files"),
        cli=cli_binary,
        upstream_url=upstream_server.url,
        config={"files": {"max_bytes": LIMIT}, "pool": {"size": 1, "spares": 0}},
    )
    running.start()
    yield running
    running.stop()


def _leftovers(server) -> list[str]:
    return sorted(path.name for path in (server.storage / "files").iterdir() if path.name.endswith(".part"))


def test_an_upload_over_files_max_bytes_is_413_and_leaves_nothing(small_server):
    before = sorted((small_server.storage / "files").iterdir())
    refused = httpx.post(
        small_server.base_url + "/files",
        headers=small_server.headers,
        data={"purpose": "batch"},
        files={"file": ("big.jsonl", b"x" * (LIMIT + 1))},
    )
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "request_too_large", "file")
    assert sorted((small_server.storage / "files").iterdir()) == before


def test_a_streamed_body_without_content_length_is_cut_off_too(small_server):
    def chunks():
        body, _ = _multipart(b"endless.bin", b"y" * (LIMIT * 2))
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    boundary = {"content-type": "multipart/form-data; boundary=b0undary"}
    refused = httpx.post(
        small_server.base_url + "/files", headers={**small_server.headers, **boundary}, content=chunks()
    )
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "request_too_large"
    assert _leftovers(small_server) == []


def test_an_upload_of_exactly_files_max_bytes_round_trips_byte_exact(small_server):
    client = openai.OpenAI(base_url=small_server.base_url, api_key=small_server.api_key, max_retries=0)
    content = random.Random(3).randbytes(LIMIT)
    created = client.files.create(file=("exact.bin", io.BytesIO(content)), purpose="user_data")
    assert created.bytes == LIMIT
    assert client.files.content(created.id).content == content
    assert (small_server.storage / "files" / created.id).read_bytes() == content
    assert _leftovers(small_server) == []
