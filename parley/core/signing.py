"""HMAC-SHA256 signatures of raw bodies in the ``sha256=<hex>`` form.

One implementation for what Parley signs (``notify``'s ``X-Parley-Signature``) and what it checks
(WhatsApp's ``X-Hub-Signature-256``): the same scheme, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]

_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is :func:`sign` of ``body`` (hex in any case, spaces around
    ignored); always False with an empty secret or signature."""
    if not secret or not signature:
        return False
    given = signature.strip()
    if not given.startswith(_PREFIX):
        return False
    given = _PREFIX + given[len(_PREFIX) :].lower()
    return hmac.compare_digest(sign(secret, body).encode(), given.encode("ascii", "replace"))
