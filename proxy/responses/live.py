"""The events of a streamed background response while it runs, for every caller following it.

A background response created with `stream: true` is not tied to the request that created it:
its run appends each SSE frame here, and the creating request, like any later
`GET /v1/responses/{id}?stream=true&starting_after=N`, reads the frames from where it wants.
A reader that goes away stops reading; the run goes on. Frame `i` is the event whose
`sequence_number` is `i`, since the writer numbers them from 0 without gaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class EventLog:
    """The frames of one run so far, and whether it has ended."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.ended = False
        self._changed = asyncio.Event()

    def append(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        # Each waiter holds the event it waits on; a fresh one serves the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, starting_after: int | None) -> AsyncIterator[bytes]:
        """The frames numbered above `starting_after` (all of them when None), as they come,
        until the run ends."""
        index = 0 if starting_after is None else max(starting_after + 1, 0)
        while True:
            changed = self._changed
            while index < len(self.frames):
                yield self.frames[index]
                index += 1
            if self.ended:
                return
            await changed.wait()  # set already if frames came while the last ones were read


def frames_after(frames: list[bytes], starting_after: int | None) -> list[bytes]:
    """Kept frames numbered above `starting_after`."""
    return frames if starting_after is None else frames[max(starting_after + 1, 0) :]
