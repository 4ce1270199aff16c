"""Stop sequences, applied by the proxy because the CLI has no way to pass them upstream."""

from __future__ import annotations


class StopCutter:
    """Feeds streamed text through; holds back what might be the start of a stop sequence.

    `feed` returns the text that is safe to emit and whether a stop sequence matched (the
    emitted text then ends just before it, and nothing more must be fed).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self._held = ""
        self.matched = False
        self.matched_stop: str | None = None  # the sequence that ended the text

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        buffer = self._held + text
        # The model writes left to right, so the stop that is complete first is the one that
        # ends earliest; the text is cut where that stop begins.
        found = [(i + len(stop), i, stop) for stop in self.stops if (i := buffer.find(stop)) >= 0]
        if found:
            _, start, stop = min(found)
            self._held = ""
            self.matched = True
            self.matched_stop = stop
            return buffer[:start], True
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that begins some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
