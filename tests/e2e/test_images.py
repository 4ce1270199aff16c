"""Image inputs: data: URLs reach the model as image blocks; http(s) URLs only when fetching is on."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _image_message(url: str, text: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}
    ]


def _image_blocks(recorded) -> list[dict]:
    return [
        block
        for m in recorded.body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "image"
    ]


def test_data_url_reaches_the_model_as_an_image_block(server, upstream):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    result = client.chat.completions.create(model="gpt-4o", messages=_image_message(url, "describe inline"))
    assert result.choices[0].message.content == "Echo: describe inline"
    (seen,) = upstream.requests_matching("describe inline")
    (block,) = _image_blocks(seen)
    assert block["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}


def test_images_in_earlier_turns_are_replayed_too(server, upstream):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    messages = [
        *_image_message(url, "first look"),
        {"role": "assistant", "content": "a pixel"},
        {"role": "user", "content": "and now?"},
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages)
    (seen,) = upstream.requests_matching("and now?")
    assert len(_image_blocks(seen)) == 1
    assert [role for role, _ in seen.turns] == ["user", "assistant", "user"]


def test_http_url_is_400_when_fetching_is_off(server, upstream):
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": _image_message("http://127.0.0.1:9/cat.png", "fetch off")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_url_not_allowed"
    assert upstream.requests_matching("fetch off") == []


@pytest.fixture()
def image_host():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            kind, body = {
                "/pixel.png": ("image/png", PNG),
                "/page.html": ("text/html", b"<html></html>"),
                "/huge.png": ("image/png", b"\0" * 4096),
            }.get(self.path, ("text/plain", b""))
            self.send_response(200 if body else 404)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetching_with_limits(make_server, upstream, image_host):
    server = make_server({"images": {"fetch": True, "max_bytes": 1024}, "pool": {"spares": 0}})
    ok = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": _image_message(image_host + "/pixel.png", "fetched pixel")},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    (block,) = _image_blocks(upstream.requests_matching("fetched pixel")[0])
    assert base64.b64decode(block["source"]["data"]) == PNG
    for path, code in (
        ("/page.html", "invalid_image"),
        ("/huge.png", "image_too_large"),
        ("/missing.png", "image_fetch_failed"),
    ):
        bad = httpx.post(
            server.base_url + "/chat/completions",
            headers=server.headers,
            json={"model": "gpt-4o", "messages": _image_message(image_host + path, "bad fetch")},
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == code
