"""Logging set-up: plain text or one JSON object per line, with the request id of the request
being served. Logs carry ids, routes, statuses, sizes and timings, never prompts or answers."""

from __future__ import annotations

import contextvars
import json
import logging
import time

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class RepeatFilter(logging.Filter):
    """Lets one record of each flooding kind through per `interval_s`, noting how many were dropped.

    Under a connection flood asyncio logs `socket.accept() out of system resource` with a traceback
    for every failed accept (thousands a second), and the listener logs each refusal; one line per
    interval says the same without filling the disk.
    """

    FLOODING = (
        ("asyncio", "socket.accept() out of system resource"),
        ("claude_proxy.listener", "refused a "),
        ("claude_proxy.listener", "connection cap "),
    )

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def _kind(self, record: logging.LogRecord) -> tuple[str, str] | None:
        for name, start in self.FLOODING:
            if record.name == name and str(record.msg).startswith(start):
                return (name, start)
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        if kind is None:
            return True
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        if dropped and last is not None:
            record.msg = f"{record.msg} ({dropped} more like this in the last {now - last:.0f} s not logged)"
            record.suppressed = dropped
        return True


class JsonFormatter(logging.Formatter):
    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        # Structured fields passed with `extra=` become keys of their own.
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(RepeatFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
