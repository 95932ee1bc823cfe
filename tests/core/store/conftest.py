"""Store fixtures: every test runs on SQLite (a temp file) and on PostgreSQL (a fresh schema).

PostgreSQL is required: when it is unreachable the PostgreSQL variants fail (never skip).
Set ``PARLEY_TEST_POSTGRES_URL`` to use another server than the local default.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from parley.core import store

_PG_CANDIDATES = (
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
)


async def _first_reachable(urls: tuple[str, ...]) -> tuple[str | None, list[str]]:
    errors = []
    for url in urls:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        await conn.close()
        return url, errors
    return None, errors


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL; fails the tests (no skip) when there is none."""
    env = os.environ.get("PARLEY_TEST_POSTGRES_URL")
    urls = (env,) if env else _PG_CANDIDATES
    # Run in a worker thread: this fixture may be requested from inside a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        url, errors = pool.submit(asyncio.run, _first_reachable(urls)).result()
    if url is None:
        pytest.fail(
            "PostgreSQL is required for the store tests but is unreachable:\n  "
            + "\n  ".join(errors)
            + "\nStart it or set PARLEY_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """URL of an empty database: a new SQLite file or a new PostgreSQL schema, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'parley.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"parley_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{base}?schema={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[str]:
    """The store connected (and migrated) to a fresh database; closed after the test."""
    await store.connect(db_url)
    try:
        yield db_url
    finally:
        await store.close()
