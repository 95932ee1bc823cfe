"""parley-weather: a tool, an LLM provider and a before_llm hook for Parley, in one module."""

from __future__ import annotations

import json
from typing import Any

from parley import LLMChunk, LLMRequest, Tool, ToolCallDelta, hookimpl

FORECASTS = ("sunny", "cloudy", "rainy", "windy")


async def weather(city: str) -> dict[str, Any]:
    """A made-up but stable forecast (a real plugin would call a weather service here)."""
    seed = sum(map(ord, city.casefold()))
    return {"city": city, "forecast": FORECASTS[seed % 4], "celsius": 5 + seed % 25}


WEATHER = Tool(
    name="weather",
    description="Today's weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
    function=weather,
)


class Forecaster:
    """An offline LLM with one trick: call the weather tool, then report what it said."""

    name = "forecaster"

    async def stream(self, request: LLMRequest):
        last = request.messages[-1]
        if last["role"] == "tool":  # second round: the tool answered
            data = json.loads(last["content"])
            celsius = data["celsius"]
            fahrenheit = "fahrenheit" in request.messages[0]["content"].casefold()
            temperature = f"{round(celsius * 9 / 5 + 32)}°F" if fahrenheit else f"{celsius}°C"
            yield LLMChunk(text=f"{data['city']}: {data['forecast']}, {temperature}.")
        elif request.tools:  # first round: ask the tool about the last word of the message
            city = str(last["content"]).rstrip("?!. ").split()[-1]
            call = ToolCallDelta(0, "call_1", "weather", json.dumps({"city": city}))
            yield LLMChunk(tool_calls=(call,), finish_reason="tool_calls")
        else:
            yield LLMChunk(text="Ask me about the weather in a city.")


@hookimpl
def register_tools(register):
    """Add the ``weather`` tool (personas opt in with ``tools = ["weather"]``)."""
    register(WEATHER)


@hookimpl
def register_llm_providers(register):
    """Add the ``forecaster`` provider (``llm.provider = "forecaster"``)."""
    register("forecaster", lambda settings: Forecaster())


@hookimpl
def before_llm(messages):
    """Ask for Fahrenheit in every prompt (a real plugin might look at the user's locale)."""
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] += "\nGive temperatures in Fahrenheit."
    else:
        messages.insert(0, {"role": "system", "content": "Give temperatures in Fahrenheit."})
