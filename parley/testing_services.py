"""Real services for tests: a TCP proxy to stage an outage, fresh PostgreSQL schemas.

Tests never stop the machine's PostgreSQL or Redis (others use them): they put a
:class:`TcpProxy` of their own between Parley and the service and cut that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["TcpProxy", "create_schema", "drop_schema", "postgres_schema"]


async def create_schema(base_url: str, prefix: str = "parley_test") -> tuple[str, str]:
    """A fresh schema on the PostgreSQL at ``base_url``: (its name, the ``database.url`` using it)."""
    import uuid

    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    return schema, f"{base_url}?schema={schema}"


async def drop_schema(base_url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    import asyncpg

    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()


@asynccontextmanager
async def postgres_schema(base_url: str) -> AsyncIterator[str]:
    """A fresh schema on the PostgreSQL at ``base_url``; yields its ``database.url``, drops it after."""
    schema, url = await create_schema(base_url)
    try:
        yield url
    finally:
        await drop_schema(base_url, schema)


class TcpProxy:
    """A TCP proxy on loopback in front of a real service, to stage an outage in a test.

    ``async with TcpProxy(url) as proxy``: ``proxy.url`` is ``url`` pointing at the proxy.
    :meth:`cut` drops every open connection and refuses new ones (the service looks down);
    :meth:`restore` accepts again on the same port. The service itself is never touched.
    """

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self._parts = parts
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.delay = 0.0
        """Seconds each chunk is held before it is passed on, either way (a slow network)."""
        self.chunks_sent = 0
        """How many reads brought clients' bytes to the proxy (a client's write each, unless
        the kernel joined or split them): requests that wait for their answer count one each."""

    @property
    def url(self) -> str:
        """The service's URL through the proxy."""
        parts = self._parts
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@" if user else ""
        return parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}").geturl()

    async def __aenter__(self) -> TcpProxy:
        await self.restore()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()

    async def restore(self) -> None:
        """Listen (again) and forward new connections to the service."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and reset every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    if source is reader:
                        self.chunks_sent += 1
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                sink.transport.abort()
                self._open.discard(sink)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
