"""Built-in plugin ``mentions``: in a multi-character conversation, the named character answers."""

from __future__ import annotations

import re

from parley.core.config import Persona, Template
from parley.core.hookspecs import hookimpl

__all__ = ["mentioned", "select_responders"]


def mentioned(text: str, personas: list[Persona]) -> list[str]:
    """Persona ids named in ``text`` (``@Name`` or the name as a word), in speaking order."""
    found = []
    for persona in personas:
        for label in {persona.name, persona.id}:
            if re.search(rf"(?<![\w@])@?{re.escape(label)}(?!\w)", text, re.IGNORECASE):
                found.append(persona.id)
                break
    return found


@hookimpl(trylast=True)
def select_responders(template: Template, text: str, personas: list[Persona]) -> list[str]:
    """Mentioned characters answer; otherwise the template's default responders, or everyone."""
    return mentioned(text, personas) or template.default_responders or [p.id for p in personas]
