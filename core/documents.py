"""What can be read of a PDF without a PDF library: how many pages it has."""

from __future__ import annotations

import re

# The page tree's root and inner nodes carry `/Type /Pages ... /Count N`; the root's is the largest.
_COUNT = re.compile(rb"/Type\s*/Pages\b(?:(?!endobj).){0,2000}?/Count\s+(\d+)", re.DOTALL)
_PAGE = re.compile(rb"/Type\s*/Page\b(?!s)")


def is_pdf(raw: bytes) -> bool:
    return raw[:1024].lstrip().startswith(b"%PDF-")


def pdf_pages(raw: bytes) -> int | None:
    """The page count of a PDF, where its page tree is stored uncompressed (most PDFs); None
    when it cannot be read this way (object streams), and the upstream's own check applies."""
    counts = [int(match.group(1)) for match in _COUNT.finditer(raw)]
    if counts:
        return max(counts)
    pages = len(_PAGE.findall(raw))
    return pages or None
