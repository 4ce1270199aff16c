"""What can be read of a PDF without a PDF library: how many pages it has.

The page tree's nodes are dictionaries `<< /Type /Pages /Kids [...] /Count N ... >>` (keys in any
order); the root's `/Count` is the largest. PDF 1.5 and later may store them in compressed object
streams (`/Type /ObjStm`, almost always `/FlateDecode`), which zlib opens: only those streams are
inflated, never page contents or images, and at most `_MAX_INFLATED` bytes in all.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

# Where a page tree node's dictionary says so; the dictionary around it is then read token by token
# within `_WINDOW` bytes either side (scanning a whole file that way would take a second per 20 MB).
_PAGES_TYPE = re.compile(rb"/Type\s*/Pages\b")
# Dictionary delimiters, hex strings (so `<ab>>>` closes one dictionary), object headers (after
# which nothing of an earlier object is open), and the two keys read.
_TOKEN = re.compile(rb"(<<)|(>>)|<[0-9A-Fa-f\s]*>|(\bobj\b)|(/Type\s*/Pages\b)|/Count\s+(\d+)")
_WINDOW = 16 * 1024
_PAGE = re.compile(rb"/Type\s*/Page\b(?!s)")
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b(?:(?!endobj).){0,1000}?stream\r?\n", re.DOTALL)
_MAX_INFLATED = 16 * 1024 * 1024
_SLICE = 64 * 1024


def is_pdf(raw: bytes) -> bool:
    return raw[:1024].lstrip().startswith(b"%PDF-")


def pdf_pages(raw: bytes) -> int | None:
    """The page count of a PDF, from its page tree whether stored plainly or in compressed object
    streams; failing that, its page objects counted. None when neither can be read (another
    compression, encryption), and the upstream's own check applies."""
    parts = [raw, *_object_streams(raw)]
    counts = [count for part in parts for count in _page_tree_counts(part)]
    if counts:
        return max(counts)
    pages = sum(len(_PAGE.findall(part)) for part in parts)
    return pages or None


def _page_tree_counts(data: bytes) -> Iterator[int]:
    """The `/Count` of every dictionary whose `/Type` is `/Pages`."""
    for match in _PAGES_TYPE.finditer(data):
        count = _count_of_dictionary_at(data, match.start())
        if count is not None:
            yield count


def _count_of_dictionary_at(data: bytes, at: int) -> int | None:
    """The `/Count` key of the dictionary whose `/Type /Pages` starts at `at`, at its own level
    (not one of a dictionary inside it), before or after its `/Type`."""
    counts: list[int | None] = []  # each dictionary open now (from the window's start): its /Count
    level = 0  # how many are open at the one wanted, once its /Type is reached
    for token in _TOKEN.finditer(data, max(0, at - _WINDOW), at + _WINDOW):
        opened, closed, header, pages_type, found = token.groups()
        if opened is not None:
            counts.append(None)
        elif closed is not None and counts:  # none open: the window started inside a dictionary
            if len(counts) == level:
                return counts[-1]
            counts.pop()
        elif header is not None:
            if level:
                return None  # the dictionary never closed
            counts.clear()
        elif pages_type is not None and token.start() == at:
            level = len(counts)
            if not level:
                return None  # its start lies before the window
        elif found is not None and counts:
            counts[-1] = int(found)
    return None


def _object_streams(raw: bytes) -> Iterator[bytes]:
    """The inflated content of each Flate-compressed object stream, within `_MAX_INFLATED` in all."""
    budget = _MAX_INFLATED
    view = memoryview(raw)
    for match in _OBJECT_STREAM.finditer(raw):
        content = _inflate(view, match.end(), budget)
        if content:
            budget -= len(content)
            yield content
        if budget <= 0:
            return


def _inflate(view: memoryview, start: int, limit: int) -> bytes:
    """The zlib data at `start`, inflated to at most `limit` bytes; empty when it is not zlib."""
    # Fed in slices, so that neither the input nor what follows the stream is copied; inflating
    # stops at the end of the zlib data, so the stream's /Length is not needed.
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for offset in range(start, len(view), _SLICE):
            out += inflater.decompress(view[offset : offset + _SLICE], limit - len(out))
            if inflater.eof or inflater.unconsumed_tail or len(out) >= limit:
                break
    except zlib.error:
        return b""  # another filter, or damaged: this stream is not read
    return bytes(out)
