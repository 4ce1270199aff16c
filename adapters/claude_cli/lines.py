"""Reading the CLI's output a line at a time without buffering a whole long answer."""

from __future__ import annotations

import asyncio

# stream-json lines carry whole messages; a long answer is one long line.
LINE_LIMIT = 64 * 1024 * 1024
# What the pipe reader buffers before it stops reading the CLI (it pauses at twice this). It is
# not the longest line: `read_line` assembles longer ones. A reader that buffered up to the line
# limit would take in a whole long answer that its caller is not reading.
READ_BUFFER = 256 * 1024


async def read_line(stream: asyncio.StreamReader, max_bytes: int = LINE_LIMIT) -> bytes:
    """The next line with its newline (without one at end of output; b"" once it is over).
    Lines longer than the stream's buffer are put together piece by piece; past `max_bytes` it
    raises `ValueError`."""
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            piece = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # end of output
            piece = exc.partial
        except asyncio.LimitOverrunError as exc:
            piece = await stream.readexactly(exc.consumed)
            size += len(piece)
            if size > max_bytes:
                raise ValueError(f"a line longer than {max_bytes} bytes") from exc
            pieces.append(piece)
            continue
        pieces.append(piece)
        return b"".join(pieces)
