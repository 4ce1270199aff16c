"""Upstream faults end in a clear OpenAI error, release what the request held, and the pool recovers."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _post(server, content: str, **extra) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        (Reply(chunks=["half ", "of ", "it"], cut_after=1), "cut"),
        (Reply(garbage=True), "garbage"),
    ],
)
def test_broken_upstream_streams_end_in_an_error_and_the_pool_recovers(make_server, upstream, reply, label):
    server = make_server({"server": {"request_timeout_s": 20}, "pool": {"spares": 0}})
    key = server.create_key(f"faulty-{label}", budget_usd=1000.0)
    upstream.on(f"fault {label}", reply)
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"fault {label}"}]},
        timeout=60,
    )
    assert response.status_code == 502
    openapi.validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "upstream_error"
    assert len(upstream.requests_matching(f"fault {label}")) == 2  # the CLI tries once more, then gives up
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)
    usage = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()
    assert usage["reserved_usd"] == 0
    assert _post(server, "after the fault").json()["choices"][0]["message"]["content"] == "Echo: after the fault"
    assert server.health()["status"] == "ok"


def test_a_cut_stream_after_output_ends_with_an_sse_error(make_server, upstream):
    server = make_server({"server": {"request_timeout_s": 20}, "pool": {"spares": 0}})
    upstream.on("cut streaming", Reply(chunks=["partial ", "rest"], cut_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "cut streaming"}], "stream": True},
        timeout=60,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert any('"content":"partial "' in line for line in lines)  # what came before the cut was streamed
    last = json.loads(lines[-2].removeprefix("data: "))
    openapi.validate(last, "ErrorResponse")
    assert last["error"]["code"] == "upstream_error"
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a disk that can really be filled. Needs the right to mount (root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path) -> None:
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_disk_refuses_new_work_until_the_ledger_can_be_written(make_server, small_disk):
    server = make_server({"storage": {"path": str(small_disk / "data")}})
    client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "disk full"}], "max_tokens": 16}
    assert client.post("/chat/completions", json=body).status_code == 200
    _fill(small_disk / "filler")

    # The answer that could not be recorded is still delivered; from then on nothing new runs.
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and 503 not in statuses:
        response = client.post("/chat/completions", json=body)
        statuses.append(response.status_code)
    refused = response.json()
    assert response.status_code == 503, statuses
    openapi.validate(refused, "ErrorResponse")
    assert refused["error"]["code"] == "storage_unavailable"
    assert set(statuses) <= {200, 503}
    health = httpx.get(server.base_url.removesuffix("/v1") + "/health").json()
    assert health["status"] == "degraded" and health["storage"]["ok"] is False

    (small_disk / "filler").unlink()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.post("/chat/completions", json=body)
        if response.status_code == 200:
            break
    assert response.status_code == 200  # the probe found the ledger writable again
    assert httpx.get(server.base_url.removesuffix("/v1") + "/health").json()["storage"] == {"ok": True}
    usage = client.get("/usage").json()
    assert usage["reserved_usd"] == 0  # nothing is left reserved by the failed records
