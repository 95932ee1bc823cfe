"""Mint the widget's signed token in the host site's backend (docs/widget.md).

The host site knows who is signed in; Parley trusts a short-lived HS256 token carrying that user's
id in ``sub``, signed with the secret both share (``web.auth_secret`` in Parley's settings).
"""

from __future__ import annotations

import time

import jwt  # PyJWT


def mint_widget_token(user_id: str, secret: str, ttl_seconds: int = 3600) -> str:
    """A token for ``Parley.init({token})`` or ``data-token``: ``sub`` = your user id, ``exp``."""
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


# For example, in a Litestar (or any) route of the host site, behind its own login:
#
#   @get("/parley-token")
#   async def parley_token(request: Request) -> str:
#       return mint_widget_token(request.user.id, settings.PARLEY_AUTH_SECRET)
