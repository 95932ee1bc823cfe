"""Module-level Tortoise config, only for Tortoise's migration CLI (it needs a dotted path).

The application never imports this; it calls ``tortoise_config(db_url)``. After changing
``parley/core/store/models.py``, regenerate migrations from the repository root with::

    .venv/bin/tortoise -c parley.core.store.migration_config.TORTOISE_ORM makemigrations --name NAME
    .venv/bin/ruff check --fix parley/core/store/migrations && .venv/bin/ruff format parley/core/store/migrations

and commit the new file under ``parley/core/store/migrations/``. The test
``tests/core/store/test_migrations.py`` fails while models and migrations disagree.
"""

from __future__ import annotations

from parley.core.store.models import tortoise_config

__all__ = ["TORTOISE_ORM"]

TORTOISE_ORM = tortoise_config("sqlite://:memory:")
