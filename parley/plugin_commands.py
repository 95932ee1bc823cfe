"""The ``parley`` command group, extended by plugins through the ``register_commands`` hook."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import pluggy

__all__ = ["PluginGroup"]

log = logging.getLogger(__name__)


class PluginGroup(click.Group):
    """A click group that adds the commands of installed plugins when they are first needed
    (an unknown command name, or the list in ``--help``), so ``parley serve`` loads no extra."""

    _plugins_loaded = False

    def plugin_manager(self) -> pluggy.PluginManager:
        """The plugins whose commands are added: built-ins and entry points (every installed
        plugin: ``plugins.disable`` is a setting of the running instance, read later)."""
        from parley.core.plugins import make_plugin_manager

        return make_plugin_manager()

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        try:
            pm = self.plugin_manager()
        except Exception as exc:  # a broken plugin must not take the built-in commands down
            log.warning("plugin commands unavailable: %s: %s", type(exc).__name__, exc)
            return
        owners: dict[str, str] = {}
        # Hook order (the last registered first, tryfirst/trylast move), as Hooks calls them.
        for impl in reversed(pm.hook.register_commands.get_hookimpls()):
            for name, command in self._commands_of(impl).items():
                if name in self.commands:
                    taken_by = (
                        f"plugin {owners[name]!r}" if name in owners else "a built-in command"
                    )
                    log.warning(
                        "command %r of plugin %r is refused: the name is taken by %s",
                        name, impl.plugin_name, taken_by,
                    )  # fmt: skip
                    continue
                owners[name] = impl.plugin_name
                self.add_command(command, name)

    @staticmethod
    def _commands_of(impl: pluggy.HookImpl) -> dict[str, click.Command]:
        """The commands one plugin's ``register_commands`` adds (none when it raises)."""
        group = click.Group()
        try:
            impl.function(**{arg: group for arg in impl.argnames if arg == "cli"})
        except Exception:
            log.exception("hook register_commands of plugin %r failed", impl.plugin_name)
        return group.commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin commands, sorted."""
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else a plugin's."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command
