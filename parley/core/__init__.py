"""The conversation engine. Imports nothing from ``parley.plugins`` or ``parley.adapters``."""
