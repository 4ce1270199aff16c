"""adapters.claude_cli.process.read_line: lines longer than the pipe reader's buffer."""

from __future__ import annotations

import asyncio

import pytest

from adapters.claude_cli.lines import read_line


def lines_of(data: bytes, *, limit: int, max_bytes: int = 1 << 20) -> list[bytes]:
    async def read() -> list[bytes]:
        stream = asyncio.StreamReader(limit=limit)
        stream.feed_data(data)
        stream.feed_eof()
        found = []
        while line := await read_line(stream, max_bytes):
            found.append(line)
        return found

    return asyncio.run(read())


def test_short_and_long_lines_come_back_whole() -> None:
    long = b"x" * 1000
    data = b"a\n" + long + b"\n" + b"b" * 63 + b"\n" + b"tail"
    assert lines_of(data, limit=64) == [b"a\n", long + b"\n", b"b" * 63 + b"\n", b"tail"]


def test_a_line_past_the_maximum_is_refused() -> None:
    with pytest.raises(ValueError):
        lines_of(b"y" * 5000 + b"\n", limit=64, max_bytes=4096)
