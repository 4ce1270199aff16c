"""Uploaded file names: cleaned once on upload, encoded for `Content-Disposition` on download.

A name is the caller's text. It is shown back in JSON, in `claude-proxy batches` output and in
a response header, and never used as a path (contents are stored under the file's id), so it
only has to be harmless in those places and still recognisable to the caller.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_FILENAME_BYTES = 255  # in UTF-8: what common filesystems allow, so a download can be saved as is
_MAX_EXTENSION_CHARS = 16  # an extension up to this long survives shortening
DEFAULT_FILENAME = "upload"

# Control characters (newlines, NUL, escape sequences), format characters (bidi overrides that
# make "txt.exe" read as "exe.txt", zero-width characters), surrogates and line/paragraph
# separators: none belongs in a name, and each breaks a header, a log line or a terminal.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SEPARATORS = re.compile(r"[/\\]")

# RFC 5987 attr-char besides letters and digits: what `filename*` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def safe_filename(raw: str | None) -> str:
    """The name to store and return for an uploaded file's multipart `filename`.

    Control and format characters are removed; a path keeps only its last component (clients
    send `C:\\Users\\me\\in.jsonl`, and `../../x` is just `x`); the result is at most
    MAX_FILENAME_BYTES in UTF-8, keeping a short extension; an empty result becomes "upload".
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = _SEPARATORS.split(name)[-1].strip()
    if name.strip(".") == "":
        return DEFAULT_FILENAME
    return _shorten(name)


def _shorten(name: str) -> str:
    if len(name.encode()) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension if stem and len(extension) <= _MAX_EXTENSION_CHARS else ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode())
    # Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
    head = name[: len(name) - len(suffix)].encode()[:budget].decode("utf-8", "ignore")
    return head + suffix


def content_disposition(filename: str) -> str:
    """An RFC 6266 `attachment` value for `filename`, safe whatever the name holds.

    `filename="..."` is an ASCII fallback in which anything that is not printable ASCII, and
    `"`, `\\` and `%` (which some clients percent-decode), become `_`; when that changed the name,
    `filename*=UTF-8''...` carries it exactly, percent-encoded (RFC 8187), for clients that read it.
    """
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in filename)
    value = f'attachment; filename="{fallback or DEFAULT_FILENAME}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe=_ATTR_CHARS, errors="replace")
    return value
