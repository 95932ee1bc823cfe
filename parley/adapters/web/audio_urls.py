"""Fetching ``audio_urls`` for ``/chat/``: http(s) only, size-capped, time-boxed, no SSRF.

Server-side request forgery is what a URL-fetching endpoint invites: a caller could make Parley
fetch ``http://169.254.169.254/`` or an admin page on the internal network. So:

- only ``http`` and ``https`` URLs, without credentials;
- the host is resolved once, and every address it resolves to must be public (not private,
  loopback, link-local, shared, reserved or multicast), unless the host is listed in
  ``web.audio_url_hosts``; with a list, unlisted hosts are refused outright;
- the connection goes to the address checked (the URL's host stays in ``Host`` and TLS SNI, and
  the certificate is verified against it), so DNS cannot answer differently the second time;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each checked the same way;
- the body is streamed and abandoned past ``web.max_audio_bytes``; the whole download,
  redirects included, is abandoned after ``web.audio_url_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import mimetypes
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

from parley.adapters.web.settings import WebSettings
from parley.server import ApiError

__all__ = ["MAX_REDIRECTS", "AudioFetcher", "FetchedAudio", "host_allowed"]

MAX_REDIRECTS = 3
MAX_URL_CHARS = 4096


@dataclass(frozen=True, slots=True)
class FetchedAudio:
    """A downloaded audio file."""

    url: str
    data: bytes
    mime_type: str | None
    fetch_ms: int

    def metadata(self) -> dict[str, Any]:
        """What the user message keeps about it."""
        return {
            "url": self.url,
            "bytes": len(self.data),
            "mime_type": self.mime_type,
            "fetch_ms": self.fetch_ms,
        }


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` is listed: ``example.com`` exactly, ``*.example.com`` its subdomains."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern.strip("[]"):
            return True
    return False


def _refused(message: str) -> ApiError:
    return ApiError(422, "audio_url_not_allowed", message)


def _failed(message: str) -> ApiError:
    return ApiError(422, "audio_fetch_failed", message)


def check_url(url: str) -> httpx.URL:
    """The parsed URL; 422 ``invalid_audio_url`` unless it is a plain http(s) URL."""
    if len(url) > MAX_URL_CHARS:
        raise ApiError(422, "invalid_audio_url", "audio_urls: URL too long")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ApiError(422, "invalid_audio_url", "audio_urls: not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError(422, "invalid_audio_url", "audio_urls: each must be an http(s) URL")
    if parsed.userinfo:
        raise ApiError(422, "invalid_audio_url", "audio_urls: credentials in URLs are not allowed")
    return parsed


class AudioFetcher:
    """Downloads audio for the web adapter (one HTTP client, made on first use)."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client: no redirects, no proxies from the environment (addresses are pinned)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(self.settings.audio_url_timeout),
                headers={"User-Agent": "parley-audio-fetch"},
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str) -> FetchedAudio:
        """Download ``url``: 422 for a bad, refused or failed URL, 413 when too large."""
        parsed = check_url(url)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.audio_url_timeout):
                data, mime_type = await self._follow(parsed)
        except TimeoutError:
            seconds = self.settings.audio_url_timeout
            raise _failed(f"audio_urls: {url} took longer than {seconds} s") from None
        except httpx.HTTPError as exc:
            raise _failed(f"audio_urls: could not fetch {url}: {type(exc).__name__}") from None
        if not data:
            raise _failed(f"audio_urls: {url} is empty")
        if mime_type is None:
            mime_type = mimetypes.guess_type(parsed.path)[0]
        fetch_ms = round((time.perf_counter() - started) * 1000)
        return FetchedAudio(url, data, mime_type, fetch_ms)

    async def _follow(self, url: httpx.URL) -> tuple[bytes, str | None]:
        for _ in range(MAX_REDIRECTS + 1):
            address = await self._address(url)
            request = self.client.build_request(
                "GET",
                url.copy_with(host=address),
                headers={"Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
            )
            response = await self.client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    url = check_url(str(url.join(location)))
                    continue
                if response.status_code != 200:
                    raise _failed(f"audio_urls: {url} answered HTTP {response.status_code}")
                return await self._read(response, url), _mime(response)
            finally:
                await response.aclose()
        raise _failed(f"audio_urls: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response, url: httpx.URL) -> bytes:
        cap = self.settings.max_audio_bytes
        too_large = ApiError(
            413, "audio_too_large", f"audio_urls: {url} is larger than {cap} bytes"
        )
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise too_large
        return bytes(body)

    async def _address(self, url: httpx.URL) -> str:
        """The address to connect to; refused unless public or the host is listed."""
        host = url.host
        allowed = self.settings.audio_url_hosts
        listed = host_allowed(host, allowed)
        if allowed and not listed:
            raise _refused(f"audio_urls: host {host!r} is not in web.audio_url_hosts")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host,
                    url.port or (443 if url.scheme == "https" else 80),
                    type=socket.SOCK_STREAM,
                )
            except OSError:
                raise _failed(f"audio_urls: cannot resolve host {host!r}") from None
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise _failed(f"audio_urls: cannot resolve host {host!r}")
        if not listed:
            for address in addresses:
                mapped = getattr(address, "ipv4_mapped", None) or address
                if not mapped.is_global:
                    raise _refused(
                        f"audio_urls: host {host!r} has a non-public address; "
                        "list it in web.audio_url_hosts to allow it"
                    )
        return str(addresses[0])


def _mime(response: httpx.Response) -> str | None:
    value = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return value if value and value != "application/octet-stream" else None
