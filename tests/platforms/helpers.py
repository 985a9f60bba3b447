"""What every adapter test does the same way: follow a consent redirect, build an AccountAuth, list the
comments asked of the sandbox."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from ouipost.platforms.base import AccountAuth, ConnectedIdentity
from ouipost.sandbox import Sandbox


async def follow_consent(http_session: aiohttp.ClientSession, url: str, redirect: str) -> dict[str, str]:
    """Open a consent URL like a browser and read the redirect back to `redirect`: its query (code, state)."""
    async with http_session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = URL(resp.headers["Location"])
    assert str(location.with_query(None).with_fragment(None)) == redirect
    return dict(location.query)


def account_auth(identity: ConnectedIdentity) -> AccountAuth:
    """The credentials the worker would hand the adapter for this connected identity."""
    return AccountAuth(identity.remote_id, identity.token.access_token, identity.token.refresh_token,
                       dict(identity.metadata))


def comment_requests(sandbox: Sandbox) -> list[Any]:
    """Every `POST …/comments` the sandbox received, in order: the comments an adapter asked for."""
    return [r for r in sandbox.requests if r.method == "POST" and r.path.endswith("/comments")]
