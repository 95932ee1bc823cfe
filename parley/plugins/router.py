"""Built-in plugin ``router``: picks a template's agent by intent, and adds the ``handoff`` tool.

``routing.mode = "keyword"`` (default): the agent with the most intents found in the message
(as whole words, ignoring case). ``routing.mode = "llm"``: the LLM classifies the message among
the agents' descriptions; keywords decide when it cannot. The lock and hand-off themselves live
in ``parley.core.routing``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING

from parley.core.config import Agent, ModelSettings, Template
from parley.core.hookspecs import hookimpl
from parley.core.inbound import Inbound
from parley.core.providers import LLMProvider, LLMRequest, ProviderError
from parley.core.routing import HANDOFF
from parley.core.tools import Tool

if TYPE_CHECKING:
    from parley.core.plugin_context import PluginContext

__all__ = ["RouterPlugin", "classify", "match_intents"]

log = logging.getLogger(__name__)

CLASSIFY_PROMPT = """\
You route a user's message to the agent that should answer it. The agents:
{agents}
Answer with the id of one agent only, or "none" when no agent fits."""


def match_intents(text: str, agents: list[Agent]) -> str | None:
    """The persona id of the agent with the most intents in ``text`` (the first on a tie)."""
    best, best_hits = None, 0
    for agent in agents:
        hits = sum(
            1
            for intent in agent.intents
            if intent.strip()
            and re.search(rf"(?<!\w){re.escape(intent.strip())}(?!\w)", text, re.IGNORECASE)
        )
        if hits > best_hits:
            best, best_hits = agent.persona, hits
    return best


async def classify(
    llm: LLMProvider, text: str, agents: list[Agent], *, model: str | None = None
) -> str | None:
    """Ask the LLM which agent fits ``text``; None when it names none of them."""
    lines = "\n".join(
        f"- {a.persona}: {a.description or ', '.join(a.intents) or a.persona}" for a in agents
    )
    request = LLMRequest(
        messages=[
            {"role": "system", "content": CLASSIFY_PROMPT.format(agents=lines)},
            {"role": "user", "content": text},
        ],
        model=ModelSettings(model=model, temperature=0, max_tokens=20),
    )
    chunks = llm.stream(request)
    async with aclosing(chunks):  # type: ignore[type-var]
        answer = "".join([chunk.text async for chunk in chunks]).strip().casefold()
    answer = answer.strip(" \"'`.")
    ids = [a.persona for a in agents]
    if answer in ids:
        return answer
    found = [pid for pid in ids if re.search(rf"(?<![\w-]){re.escape(pid)}(?![\w-])", answer)]
    return found[0] if len(found) == 1 else None


class RouterPlugin:
    """The router: one instance per plugin manager; it learns the LLM at ``startup``."""

    def __init__(self) -> None:
        self.context: PluginContext | None = None

    @hookimpl
    def register_tools(self, register: Callable[[Tool], None]) -> None:
        """Register ``handoff``."""
        register(HANDOFF)

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Keep the context: its settings and LLM (for ``routing.mode = "llm"``)."""
        self.context = context

    @hookimpl(trylast=True)
    async def route(self, inbound: Inbound, template: Template) -> str | None:
        """Classify with the LLM in ``llm`` mode, else (or when it cannot) match keywords."""
        text = inbound.text or ""
        routing = self.context.settings.routing if self.context else None
        llm = self.context.llm if self.context else None
        if routing is not None and routing.mode == "llm" and llm is not None and text:
            try:
                chosen = await classify(llm, text, template.agents, model=routing.model)
            except ProviderError as exc:
                log.warning("routing by LLM failed (%s); matching keywords instead", exc.message)
            else:
                if chosen is not None:
                    return chosen
        return match_intents(text, template.agents)
