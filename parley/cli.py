"""The ``parley`` command: serve, chat, telegram, plugins, db."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager, suppress
from typing import Any, TextIO

import click

from parley.core.config import Settings, SettingsError
from parley.core.loading import load_settings
from parley.logs import configure_logging
from parley.plugin_commands import PluginGroup

__all__ = ["main"]


@contextmanager
def _settings_errors() -> Iterator[None]:
    """A bad setting (also one of an adapter's or plugin's own sections) exits with code 2."""
    try:
        yield
    except SettingsError as exc:
        click.echo(f"settings error: {exc}", err=True)
        raise SystemExit(2) from None


def _settings(settings_dir: str | None) -> Settings:
    with _settings_errors():
        return load_settings(settings_dir)


settings_option = click.option(
    "--settings",
    "settings_dir",
    envvar="PARLEY_SETTINGS_DIR",
    type=click.Path(file_okay=False),
    help="Settings folder (default ./settings; env PARLEY_SETTINGS_DIR).",
)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Parley: conversational agents on chat platforms.

    Settings come from settings/settings.toml (or --settings DIR) and PARLEY_* environment
    variables, e.g. PARLEY_LLM__BASE_URL. See docs/settings.md.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpx2", "tortoise", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Interface to bind (default server.host).")
@click.option("--port", type=int, help="Port (default server.port).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    envvar="PARLEY_WORKERS",
    show_default=True,
    help="Processes serving the one port (more than 1 needs PostgreSQL and redis.url; "
    "env PARLEY_WORKERS). See docs/deployment.md.",
)
@settings_option
def serve(host: str | None, port: int | None, workers: int, settings_dir: str | None) -> None:
    """Serve the web API, the WebSocket and every enabled adapter (applies pending migrations)."""
    from parley import serving
    from parley.core.choice import describe
    from parley.core.runtime import Runtime
    from parley.server import create_app

    settings = _settings(settings_dir)
    if workers > 1 and (problems := serving.workers_problems(settings)):
        for problem in problems:
            click.echo(f"error: --workers {workers}: {problem}", err=True)
        raise SystemExit(2)
    with _settings_errors():
        runtime = Runtime(settings)
        runtime.build_providers()  # a bad stt/tts setting stops here, with its key's name
        app = create_app(settings, runtime)
    host = host or settings.server.host
    port = port or settings.server.port
    click.echo(f"Providers: {describe({k: getattr(runtime, k) for k in ('llm', 'stt', 'tts')})}")
    many = f", {workers} processes" if workers > 1 else ""
    click.echo(
        f"Parley listening on http://{host}:{port}{many}  (health: /health, API docs: /schema)"
    )
    with _settings_errors():
        serving.serve(
            app, settings, host=host, port=port, workers=workers, settings_dir=settings_dir
        )


@main.command()
@settings_option
def telegram(settings_dir: str | None) -> None:
    """Run the Telegram bot alone, polling getUpdates (whatever telegram.mode says).

    Needs telegram.token (or TELEGRAM_BOT_TOKEN); telegram.enabled need not be set. Stop with Ctrl-C.
    """
    from parley.adapters.telegram.settings import load_telegram_settings
    from parley.core.runtime import Runtime

    settings = _settings(settings_dir)
    with _settings_errors():
        telegram_settings = load_telegram_settings(settings, enabled=True, mode="polling")
        configure_logging(settings)  # [logging]: level, text or json
    click.echo("Parley Telegram bot polling (Ctrl-C stops it)")
    with _settings_errors(), suppress(KeyboardInterrupt):
        failure = asyncio.run(_telegram(Runtime(settings), telegram_settings))
        if failure:
            click.echo(f"error: {failure}", err=True)
            raise SystemExit(1)


async def _telegram(runtime: Any, telegram_settings: Any) -> str | None:
    """Start the runtime without its adapters and poll with a Telegram adapter of our own.

    Returns why the bot stopped on its own (a refused token), else None.
    """
    from parley.adapters.telegram.adapter import TelegramAdapter

    await runtime.start(adapters=False)
    for notice in runtime.notices:
        click.echo(f"note: {notice}", err=True)
    adapter = TelegramAdapter(runtime.adapter_context, telegram_settings)
    try:
        await adapter.start()
        await adapter.wait()
        return adapter.failure
    finally:
        try:
            await adapter.stop()
        finally:
            await runtime.stop()


@main.command()
@settings_option
def plugins(settings_dir: str | None) -> None:
    """List loaded plugins, the hooks they implement, and the providers, adapters and tools."""
    from parley.core.plugins import describe_plugins
    from parley.core.runtime import Runtime

    runtime = Runtime(_settings(settings_dir))
    with _settings_errors():
        runtime.collect()
    for info in describe_plugins(runtime.pm):
        click.echo(f"{info.name}  [{info.source}]")
        click.echo(f"    hooks: {', '.join(info.hooks) or '-'}")
    registry = runtime.registry
    for kind in ("llm", "stt", "tts"):
        click.echo(f"{kind} providers: {', '.join(sorted(getattr(registry, kind))) or '-'}")
    click.echo(f"adapters: {', '.join(sorted(runtime.adapter_factories)) or '-'}")
    click.echo(f"tools: {', '.join(runtime.tools.names()) or '-'}")


@main.group()
def db() -> None:
    """Database commands."""


@db.command()
@settings_option
def upgrade(settings_dir: str | None) -> None:
    """Apply pending migrations to database.url."""
    from parley.core import store

    settings = _settings(settings_dir)

    async def run() -> list[str]:
        try:
            return await store.migrate(settings.database.url)
        finally:
            await store.close()

    applied = asyncio.run(run())
    click.echo("\n".join(f"applied {name}" for name in applied) or "nothing to apply")


@main.command()
@click.option(
    "--template", "template_id", help="Template id (default conversation.default_template)."
)
@click.option("--lang", "language", help="Language code (default conversation.language).")
@click.option("--user", "user_name", help="Who you are (default: your login name).")
@settings_option
def chat(
    template_id: str | None, language: str | None, user_name: str | None, settings_dir: str | None
) -> None:
    """Talk to an agent in the terminal; replies stream as they arrive. /quit ends it.

    When standard input is not a terminal, each line is one message and the chat ends at the end
    of input, so it can be scripted.
    """
    settings = _settings(settings_dir)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # the turn log line: noise here
        logging.getLogger("parley.turn").setLevel(logging.WARNING)
    if template_id and template_id not in settings.templates:
        known = ", ".join(sorted(settings.templates))
        raise click.BadParameter(f"unknown template {template_id!r} (known: {known})")
    interactive = sys.stdin.isatty()
    read: Callable[[], str | None] = _prompt if interactive else _line_reader(sys.stdin)
    with _settings_errors():
        asyncio.run(
            _chat(
                settings, template_id, language, user_name or getpass.getuser(), read, interactive
            )
        )


def _prompt() -> str | None:
    try:
        return input("you> ")
    except EOFError:
        return None


def _line_reader(stream: TextIO) -> Callable[[], str | None]:
    def read() -> str | None:
        line = stream.readline()
        return None if line == "" else line.rstrip("\n")

    return read


async def _chat(
    settings: Settings,
    template_id: str | None,
    language: str | None,
    user_name: str,
    read: Callable[[], str | None],
    interactive: bool,
) -> None:
    from parley.core import store
    from parley.core.runtime import Runtime

    runtime = Runtime(settings)
    await runtime.start(adapters=False)
    for notice in runtime.notices:
        click.echo(f"note: {notice}", err=True)
    try:
        engine = runtime.engine
        user = await store.get_or_create_user("cli", user_name, display_name=user_name)
        opened = await engine.open(user.id, "cli", template_id=template_id, language=language)
        conversation_id = opened.conversation.id
        if opened.greeting is not None:
            _say(opened.greeting.name, opened.greeting.content)
        while True:
            text = await asyncio.to_thread(read)
            if text is None or text.strip() == "/quit":
                ended = await store.get_conversation(conversation_id)
                if ended is not None and ended.is_open:
                    before = await store.count_messages(conversation_id)
                    await engine.end(conversation_id, "user_ended")
                    for message in (await store.list_messages(conversation_id))[before:]:
                        _say(message.name, message.content)
                break
            if not text.strip():
                continue
            if await _run_turn(engine, conversation_id, text):
                break
    finally:
        await runtime.stop()


def _say(name: str | None, text: str) -> None:
    click.echo(f"{name or 'assistant'}> {text}")


async def _run_turn(engine: Any, conversation_id: str, text: str) -> bool:
    """Stream one turn to the terminal; True when the conversation ended."""
    from parley.core.events import (
        ErrorEvent,
        MessageCompleted,
        MessageStarted,
        TextDelta,
        TurnCompleted,
    )
    from parley.core.inbound import Inbound

    ended = False
    async with aclosing(engine.turn(conversation_id, Inbound(text=text))) as events:
        async for event in events:
            if isinstance(event, MessageStarted):
                click.echo(f"{event.character_name or 'assistant'}> ", nl=False)
            elif isinstance(event, TextDelta):
                click.echo(event.text, nl=False)
            elif isinstance(event, MessageCompleted):
                click.echo()
            elif isinstance(event, ErrorEvent):
                click.echo(f"error: {event.message}", err=True)
            elif isinstance(event, TurnCompleted):
                ended = event.conversation_ended
    return ended


if __name__ == "__main__":  # pragma: no cover
    main()
