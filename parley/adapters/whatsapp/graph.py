"""A small client of Meta's Graph API for WhatsApp: messages, read receipts, media.

Every request carries the bearer token (never logged). 5xx answers, 429 and network errors are
retried with exponential backoff; any other failure raises :class:`GraphError` at once. Errors
are logged with Graph's own error code (``error.code`` of the JSON body).
"""

from __future__ import annotations

import functools
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.core.retry import retrying

__all__ = ["GraphClient", "GraphError", "MediaInfo"]

log = logging.getLogger(__name__)

_MAX_BACKOFF = 8.0


class GraphError(Exception):
    """A Graph API request that failed for good.

    ``status`` is the HTTP status (None for a network error), ``code`` Graph's error code.
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def as_metadata(self) -> dict[str, Any]:
        """What is kept on a message that could not be sent."""
        return {"status": self.status, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """``GET {graph_base}/{media_id}``: where to download a media file (valid 5 minutes)."""

    id: str
    url: str
    mime_type: str | None = None
    file_size: int | None = None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for the process (building one loads the CA bundle: ~0.1 s)."""
    return httpx.create_ssl_context()


def _where(url: str) -> str:
    """Host and path of a URL, without its query (media URLs carry signatures)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _retryable(exc: Exception) -> bool:
    """5xx, 429 and network errors are retried; other failures are final."""
    if not isinstance(exc, GraphError):
        return False
    return exc.status is None or exc.status >= 500 or exc.status == 429


def _describe(exc: Exception) -> str:
    if not isinstance(exc, GraphError):
        return str(exc)
    return f"HTTP {exc.status}, Graph error code {exc.code}: {exc.message}"


def _log_failure(what: str, error: GraphError) -> None:
    log.error("Graph API %s failed: %s", what, _describe(error))


def _graph_error(response: httpx.Response) -> GraphError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or response.reason_phrase or "request failed")
    return GraphError(message, status=response.status_code, code=error.get("code"))


class GraphClient:
    """Talks to ``settings.graph_base`` as the business phone number ``settings.phone_number_id``."""

    def __init__(
        self, settings: WhatsAppSettings, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.timeout, verify=_tls())
        self._auth = {"Authorization": f"Bearer {settings.access_token}"}

    async def aclose(self) -> None:
        """Close the HTTP client (when this object made it)."""
        if self._own_client:
            await self._client.aclose()

    def _url(self, *parts: str) -> str:
        return "/".join((self.settings.graph_base, *parts))

    # -- transport -------------------------------------------------------------------------

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return a 2xx response or raise GraphError."""
        try:
            async for attempt in self._retrying(f"Graph API {method} {_where(url)}"):
                with attempt:
                    return await self._request_once(method, url, **kwargs)
        except GraphError as error:
            _log_failure(f"{method} {_where(url)}", error)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, headers=self._auth, **kwargs)
        except httpx.TransportError as exc:
            raise GraphError(f"network error: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return response
        raise _graph_error(response)

    def _retrying(self, what: str) -> Any:
        return retrying(
            what,
            on=_retryable,
            describe=_describe,
            logger=log,
            retries=self.settings.max_retries,
            backoff=self.settings.retry_backoff,
            max_backoff=_MAX_BACKOFF,
        )

    async def _post_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = {"messaging_product": "whatsapp", **payload}
        url = self._url(self.settings.phone_number_id, "messages")
        response = await self._request("POST", url, json=body)
        return _json(response)

    # -- messages --------------------------------------------------------------------------

    async def send_text(self, to: str, body: str) -> str | None:
        """Send a text message (at most 4,096 characters) to a number or ``group:<id>``; return
        its wamid."""
        data = await self._post_message(
            {**_recipient(to), "type": "text", "text": {"preview_url": False, "body": body}}
        )
        return _message_id(data)

    async def send_voice(self, to: str, media_id: str) -> str | None:
        """Send an uploaded OGG/Opus file as a voice note; return its wamid."""
        data = await self._post_message(
            {**_recipient(to), "type": "audio", "audio": {"id": media_id, "voice": True}}
        )
        return _message_id(data)

    async def mark_read(self, message_id: str, *, typing: bool = True) -> None:
        """Mark an inbound message read and (``typing``) show the typing indicator."""
        payload: dict[str, Any] = {"status": "read", "message_id": message_id}
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        await self._post_message(payload)

    # -- media -----------------------------------------------------------------------------

    async def media_info(self, media_id: str) -> MediaInfo:
        """Where to download an inbound media file."""
        data = _json(await self._request("GET", self._url(media_id)))
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise GraphError(f"media {media_id} has no download url")
        size = data.get("file_size")
        return MediaInfo(
            id=str(data.get("id") or media_id),
            url=url,
            mime_type=data.get("mime_type"),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """Download a media file with the bearer token; GraphError beyond ``max_bytes``."""
        try:
            async for attempt in self._retrying(f"Graph API media download {_where(url)}"):
                with attempt:
                    return await self._download_once(url, max_bytes)
        except GraphError as error:
            _log_failure(f"media download {_where(url)}", error)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _download_once(self, url: str, max_bytes: int) -> bytes:
        try:
            async with self._client.stream("GET", url, headers=self._auth) as response:
                if not response.is_success:
                    await response.aread()
                    raise _graph_error(response)
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise GraphError(
                            f"media larger than {max_bytes} bytes", status=413, code="too_large"
                        )
                return bytes(data)
        except httpx.TransportError as exc:
            raise GraphError(f"network error: {type(exc).__name__}: {exc}") from None

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload a file to ``{phone_number_id}/media``; return its media id."""
        url = self._url(self.settings.phone_number_id, "media")
        response = await self._request(
            "POST",
            url,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        media_id = _json(response).get("id")
        if not media_id:
            raise GraphError("media upload answered without an id", status=response.status_code)
        return str(media_id)


def _recipient(to: str) -> dict[str, str]:
    """``recipient_type`` and ``to`` for a number, or a group given as ``group:<group id>``."""
    if to.startswith("group:"):
        return {"recipient_type": "group", "to": to.removeprefix("group:")}
    return {"recipient_type": "individual", "to": to}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise GraphError(
            "Graph API answered with invalid JSON", status=response.status_code
        ) from None
    return data if isinstance(data, dict) else {}


def _message_id(data: dict[str, Any]) -> str | None:
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return messages[0].get("id")
    return None
