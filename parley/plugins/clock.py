"""Built-in plugin ``clock``: the ``current_time`` tool, the smallest useful tool plugin.

A persona gets it with ``tools = ["current_time"]``. Time zones are IANA names read through
``zoneinfo`` (the system's time-zone database, or the ``tzdata`` package where there is none).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.core.hookspecs import hookimpl
from parley.core.tools import Tool

__all__ = ["CURRENT_TIME", "current_time", "register_tools"]


async def current_time(timezone: str = "UTC") -> dict[str, str]:
    """The date and time now in ``timezone`` (an IANA name such as ``Europe/Berlin``)."""
    try:
        zone = ZoneInfo(timezone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}: use an IANA name such as Europe/Berlin"
        ) from None
    now = datetime.now(zone)
    return {
        "timezone": zone.key,
        "datetime": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M"),
        "weekday": now.strftime("%A"),
        "utc_offset": now.strftime("%z"),
    }


CURRENT_TIME = Tool(
    name="current_time",
    description=(
        "The current date, time and weekday in a time zone. Use it whenever the answer depends "
        "on today's date or the time of day."
    ),
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "IANA time zone, e.g. Europe/Berlin or America/New_York.",
                "default": "UTC",
            }
        },
    },
    function=current_time,
)


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    """Register ``current_time``."""
    register(CURRENT_TIME)
