"""The Files API's own rules: cleaned upload names, the download header, and streamed uploads."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from litestar.testing import TestClient

from budgets.database import open_database
from budgets.keys import KeyStore, Project
from proxy.app import create_app
from proxy.batches.filenames import MAX_FILENAME_BYTES, content_disposition, safe_filename
from proxy.settings import load_settings
from tests.support.fake_backend import FakeBackend

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("notes.jsonl", "notes.jsonl"),
        ("a\nb.txt", "ab.txt"),
        ("a\r\nb.txt", "ab.txt"),
        ("a\0b.txt", "ab.txt"),
        ("\x1b[31mred.txt", "[31mred.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),  # a right-to-left override would show "exe.txt"
        ("line\u2028break", "linebreak"),
        ('a"b.txt', 'a"b.txt'),  # legal in a name; the header encodes it
        ("../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\me\\in.jsonl", "in.jsonl"),
        ("..\\..\\x", "x"),
        ("dir/", "upload"),
        ("..", "upload"),
        ("...", "upload"),
        ("  spaced.txt  ", "spaced.txt"),
        ("", "upload"),
        (None, "upload"),
        ("\n\r\0", "upload"),
        ("données.jsonl", "données.jsonl"),
        ("e\u0301.txt", "\u00e9.txt"),  # NFC: one code point
    ],
)
def test_safe_filename(raw, clean):
    assert safe_filename(raw) == clean


def test_safe_filename_keeps_a_long_name_within_bounds_and_its_extension():
    assert safe_filename("a" * 1000 + ".jsonl") == "a" * (MAX_FILENAME_BYTES - 6) + ".jsonl"
    multibyte = safe_filename("ü" * 300 + ".txt")
    assert len(multibyte.encode()) <= MAX_FILENAME_BYTES and multibyte.endswith("ü.txt")
    assert safe_filename("x" * 300) == "x" * MAX_FILENAME_BYTES
    assert len(safe_filename("x." + "y" * 300).encode()) == MAX_FILENAME_BYTES  # no short extension


def _parsed(header: str) -> tuple[str, str | None]:
    """(filename, filename*) read by RFC 6266's grammar: a token list of `;`-separated parameters."""
    disposition, *params = [part.strip() for part in header.split(";")]
    assert disposition == "attachment"
    values = dict(param.split("=", 1) for param in params)
    assert set(values) <= {"filename", "filename*"}
    quoted = values["filename"]
    assert quoted[0] == quoted[-1] == '"' and '"' not in quoted[1:-1] and "\\" not in quoted
    return quoted[1:-1], values.get("filename*")


@pytest.mark.parametrize(
    ("name", "fallback", "exact"),
    [
        ("notes.jsonl", "notes.jsonl", None),
        ('a"b.txt', "a_b.txt", 'a"b.txt'),
        ("a\\b.txt", "a_b.txt", "a\\b.txt"),
        ("100%.txt", "100_.txt", "100%.txt"),
        ("données.jsonl", "donn_es.jsonl", "données.jsonl"),
        ("a\nb", "a_b", "a\nb"),  # a name stored before names were cleaned still makes a valid header
        ("", "upload", None),
    ],
)
def test_content_disposition(name, fallback, exact):
    header = content_disposition(name)
    assert header.isascii() and header.isprintable()
    parsed_fallback, extended = _parsed(header)
    assert parsed_fallback == fallback
    if exact is None:
        assert "filename*" not in header
    else:
        assert extended.startswith("UTF-8''")
        assert unquote(extended[len("UTF-8''") :]) == exact


# --------------------------------------------------------------------------- the routes, in process


class Files:
    """An app with a fake backend, a key of project `acme`, and its storage directory."""

    def __init__(self, client: TestClient, key: str, storage: Path) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}
        self.blobs = storage / "files"

    def upload(self, name: str, content: bytes, purpose: str = "batch"):
        return self.client.post(
            "/v1/files", files={"file": (name, content)}, data={"purpose": purpose}, headers=self.headers
        )

    def raw_upload(self, body: bytes, boundary: str = "b0undary"):
        return self.client.post(
            "/v1/files",
            content=body,
            headers={**self.headers, "content-type": f"multipart/form-data; boundary={boundary}"},
        )

    def get(self, path: str):
        return self.client.get(path, headers=self.headers)

    def stored(self) -> list[str]:
        return sorted(path.name for path in self.blobs.iterdir())


@pytest.fixture()
def make_files(tmp_path) -> Iterator:
    clients: list[TestClient] = []

    def make(**overrides) -> Files:
        storage = tmp_path / f"app{len(clients)}"
        settings = load_settings(None, environ={}, overrides={"storage.path": str(storage), **overrides})
        db = open_database(storage)
        keys = KeyStore(db)
        keys.upsert_project(Project(name="acme"))
        secret, _ = keys.create_key("acme")
        db.close()
        client = TestClient(app=create_app(settings, backend=FakeBackend())).__enter__()
        clients.append(client)
        return Files(client, secret, storage)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def multipart(filename: bytes, content: bytes, *, purpose: bytes = b"batch", boundary: bytes = b"b0undary") -> bytes:
    """A form built by hand, so a filename can hold bytes no client library would send."""
    return b"".join(
        [
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n' + purpose + b"\r\n",
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n",
            b"--" + boundary + b"--\r\n",
        ]
    )


@pytest.mark.parametrize(
    ("name", "clean"),
    [("a\nb.txt", "ab.txt"), ("a\rb.txt", "ab.txt"), ('a"b.txt', 'a"b.txt'), ("../../x", "x"), ("ü.txt", "ü.txt")],
)
def test_upload_returns_the_cleaned_name_and_download_encodes_it(make_files, name, clean):
    files = make_files()
    created = files.upload(name, b"line\n")
    assert created.status_code == 200, created.text
    assert created.json()["filename"] == clean
    assert files.get(f"/v1/files/{created.json()['id']}").json()["filename"] == clean
    download = files.get(f"/v1/files/{created.json()['id']}/content")
    assert download.status_code == 200 and download.content == b"line\n"
    assert download.headers["content-disposition"] == content_disposition(clean)
    assert _parsed(download.headers["content-disposition"])[0].isascii()


@pytest.mark.parametrize(("raw", "clean"), [(b"a\x00b.txt", "ab.txt"), (b"a\rb.txt", "ab.txt"), (b"..\\..\\x", "x")])
def test_raw_bytes_in_a_multipart_filename_are_cleaned(make_files, raw, clean):
    files = make_files()
    created = files.raw_upload(multipart(raw, b"{}\n"))
    assert created.status_code == 200, created.text
    assert created.json()["filename"] == clean


# --------------------------------------------------------------------------- uploads streamed to disk


def assert_413(response) -> dict:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
    return error


def test_a_file_over_max_bytes_is_413_and_leaves_no_partial_file(make_files):
    files = make_files(**{"files.max_bytes": 1000})
    error = assert_413(files.upload("big.jsonl", b"x" * 1001))
    assert error["param"] == "file" and "1000 bytes" in error["message"]
    assert files.stored() == []
    assert files.get("/v1/files").json()["data"] == []
    exact = files.upload("fits.jsonl", b"y" * 1000)  # the limit itself is allowed
    assert exact.status_code == 200 and exact.json()["bytes"] == 1000
    assert files.stored() == [exact.json()["id"]]


def test_a_body_announced_far_over_the_limit_is_refused_before_it_is_read(make_files):
    files = make_files(**{"files.max_bytes": 1000})
    assert_413(files.upload("huge.jsonl", b"z" * 200_000))
    assert files.stored() == []


def test_a_large_binary_upload_round_trips_byte_exact(make_files):
    files = make_files()
    # Random bytes over several write slices, with what looks like CRLF and boundaries inside.
    content = random.Random(14).randbytes(3 * 1024 * 1024 + 17) + b"\r\n--b0undary\r\n\r\n--"
    created = files.upload("blob.bin", content, purpose="user_data")
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["bytes"], body["filename"], body["purpose"]) == (len(content), "blob.bin", "user_data")
    assert files.stored() == [body["id"]]  # stored under its id, no .part left over
    assert (files.blobs / body["id"]).read_bytes() == content
    download = files.get(f"/v1/files/{body['id']}/content")
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (multipart(b"x.txt", b"data", purpose=b"memes"), "purpose"),
        (multipart(b"x.txt", b"data").replace(b"--b0undary--\r\n", b""), None),  # cut short
        (multipart(b"\xff\xfe.txt", b"data"), None),  # a name that is not UTF-8
        (multipart(b"x.txt", b"data").replace(b'name="purpose"', b'name="note"'), "purpose"),
        (multipart(b"x.txt", b"data", purpose=b"b" * 5000), "purpose"),
    ],
    ids=["bad purpose", "truncated", "not utf-8", "no purpose", "long field"],
)
def test_a_refused_upload_leaves_no_partial_file(make_files, body, param):
    files = make_files()
    refused = files.raw_upload(body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == param
    assert files.stored() == []


def test_two_file_parts_are_refused(make_files):
    files = make_files()
    form = multipart(b"a.txt", b"one")
    second = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\n\r\ntwo\r\n'
    refused = files.raw_upload(form.replace(b"--b0undary--\r\n", second + b"--b0undary--\r\n"))
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "file"
    assert files.stored() == []


def test_not_multipart_or_no_file_part_is_400_for_file(make_files):
    files = make_files()
    as_json = files.client.post("/v1/files", json={"purpose": "batch"}, headers=files.headers)
    assert as_json.status_code == 400 and as_json.json()["error"]["param"] == "file"
    no_file = files.client.post(
        "/v1/files", data={"purpose": "batch"}, files={"other": ("o.txt", b"o")}, headers=files.headers
    )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert files.stored() == []


def test_a_file_part_without_a_filename_is_named_upload(make_files):
    files = make_files()
    body = multipart(b"x", b"content").replace(b'; filename="x"', b"")
    created = files.raw_upload(body)
    assert created.status_code == 200, created.text
    assert created.json()["filename"] == "upload"
    assert files.get(f"/v1/files/{created.json()['id']}/content").content == b"content"
