"""Logging helpers: keep secrets out of log lines."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "redact"]

_SECRET_PARAMS = re.compile(
    r"(?i)\b(token|access_token|api_key|key|secret|hub\.verify_token|password)=([^&\s\"']+)"
)


def redact(text: str) -> str:
    """``text`` with the values of secret-looking query parameters replaced by ``***``."""
    return _SECRET_PARAMS.sub(r"\1=***", text)


class RedactSecrets(logging.Filter):
    """Redacts secret query parameters (``?token=``, ``hub.verify_token=``...) in log records.

    Uvicorn's access and WebSocket log lines carry full query strings, where the widget's signed
    token and WhatsApp's verify token travel.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments (and message) in place; never drops a record."""
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
