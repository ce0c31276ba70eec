"""Structured logs: one JSON object per line on standard error.

Standard error, because ``predictor mcp`` speaks the protocol on standard
output. Fields given with ``extra=`` (``event``, ``cursor``, ...) become keys.

>>> import io, json, logging
>>> stream = io.StringIO()
>>> logger = logging.getLogger("doctest.logs")
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter())
>>> logger.addHandler(handler)
>>> logger.warning("checkpoint", extra={"cursor": 7})
>>> entry = json.loads(stream.getvalue())
>>> entry["message"], entry["cursor"], entry["level"]
('checkpoint', 7, 'WARNING')
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send every log record, as JSON, to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
