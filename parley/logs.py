"""Logging helpers: keep secrets out of log lines; ``logging.format = "json"`` for log shippers."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from parley.core.config import InvalidSetting

if TYPE_CHECKING:
    from parley.core.config import Settings

__all__ = ["JsonFormatter", "LoggingSettings", "RedactSecrets", "configure_logging", "redact"]

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


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``exc`` (a traceback)
    and every ``extra`` field of the record (the per-turn line carries ``turn``)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


@dataclass(slots=True)
class LoggingSettings:
    """``[logging]``: how ``parley serve`` writes its log."""

    format: Literal["text", "json"] = "text"
    """``text`` (for people) or ``json`` (one object per line, for log shippers)."""
    level: str = ""
    """``DEBUG``, ``INFO``, ``WARNING``...; empty: INFO (DEBUG with ``parley -v``)."""

    def __post_init__(self) -> None:
        self.level = self.level.upper()
        if self.level and not isinstance(logging.getLevelName(self.level), int):
            raise InvalidSetting("level", f"a logging level name, got {self.level!r}")


def configure_logging(
    settings: Settings, loggers: tuple[str, ...] = ("uvicorn", "uvicorn.access")
) -> LoggingSettings:
    """Apply ``[logging]``: the level, and with ``json`` the JSON formatter on the root's handlers
    and on ``loggers``' own (uvicorn installs its own handlers)."""
    config = settings.section("logging", LoggingSettings)
    if config.level:
        logging.getLogger().setLevel(config.level)
    if config.format == "json":
        formatter = JsonFormatter()
        for name in ("", *loggers):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
    return config
