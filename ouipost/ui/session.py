"""Who is signed in to the admin UI, and the CSRF token of their forms.

The session lives in an encrypted, signed cookie (aiohttp-session's EncryptedCookieStorage, Fernet
under a key derived from OUIPOST_SECRET_KEY for this purpose only). The cookie holds no credential of
its own: it names a row of `admin_sessions` (the same rows admin JWTs have) and its user, so
- signing out revokes that row, and a copy of the cookie kept elsewhere stops working at once;
- deactivating, demoting-away or deleting a user, or changing their password, revokes every session
  of theirs in every process, exactly as for bearer tokens (`admin_auth.authenticate_session`);
- a session unused for `OUIPOST_UI_IDLE_MINUTES` is revoked on its next request.

Every session carries a random CSRF token that each form repeats; `csrf_ok` compares them in
constant time. Signing in starts a new session (new cookie, new CSRF token), so a session fixed
before login is of no use afterwards.
"""

from __future__ import annotations

import base64
import hmac
import secrets

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from ouipost.config import Settings
from ouipost.core.crypto import derive_key
from ouipost.http.context import CLOCK, DB, PASSWORDS, SETTINGS
from ouipost.identity import admin_auth
from ouipost.identity.admin_auth import AdminUser, LoginOutcome
from ouipost.identity.audit import Actor, record_audit

COOKIE_NAME = "ouipost_ui"
COOKIE_PURPOSE = "ouipost/ui-session-cookie/v1"
# The idle clock is written back to the cookie at most this often, so browsing does not rewrite
# the cookie on every page.
SEEN_RESOLUTION_SECONDS = 60


def cookie_storage(settings: Settings) -> EncryptedCookieStorage:
    """The session cookie: encrypted and signed, HttpOnly, SameSite=Lax, Secure behind https, sent
    to /ui only, and gone when the browser closes (the server keeps the real lifetime)."""
    key = Fernet(base64.urlsafe_b64encode(derive_key(settings.secret_key, COOKIE_PURPOSE)))
    return EncryptedCookieStorage(
        key,
        cookie_name=COOKIE_NAME,
        path="/ui",
        httponly=True,
        samesite="Lax",
        secure=settings.public_url.startswith("https://"),
        max_age=None,
    )


async def sign_in(request: web.Request, email: str, password: str) -> LoginOutcome:
    """Check the credentials with the admin API's own login (argon2id off the event loop and bounded,
    lockout, audit entries) and, when they hold, start a fresh session bound to the new
    `admin_sessions` row."""
    now = request.app[CLOCK].now()
    outcome = await admin_auth.attempt_sign_in(
        request.app[DB], email, password, passwords=request.app[PASSWORDS], ip_address=request.remote,
        user_agent=request.headers.get("User-Agent"), secret_key=request.app[SETTINGS].secret_key, now=now,
    )
    if outcome.token is not None and outcome.user is not None:
        session = await new_session(request)
        session["uid"] = outcome.user["id"]
        session["jti"] = outcome.token.jti
        session["seen"] = int(now.timestamp())
        session["csrf"] = secrets.token_urlsafe(32)
    return outcome


async def sign_out(request: web.Request) -> None:
    """Revoke this session's row (every process refuses it from now on), write `auth.logout` to the
    audit log as the admin API's logout does, and drop the cookie's contents."""
    session = await get_session(request)
    user = await current_user(request)
    if user is not None:
        now = request.app[CLOCK].now()
        async with request.app[DB].begin() as conn:
            await admin_auth.revoke_session(conn, user.jti, now)
            actor = Actor(user_id=user.id, user_email=user.email, ip_address=request.remote,
                          user_agent=request.headers.get("User-Agent"))
            await record_audit(conn, action="auth.logout", actor=actor, now=now, resource_type="user",
                               resource_id=user.id)
    session.invalidate()


async def current_user(request: web.Request) -> AdminUser | None:
    """The signed-in user, or None: no session, a revoked or expired one, an inactive user, or a
    session idle for longer than the setting (which is then revoked)."""
    session = await get_session(request)
    uid, jti, seen = session.get("uid"), session.get("jti"), session.get("seen")
    if not (isinstance(uid, str) and isinstance(jti, str) and isinstance(seen, int)):
        return None
    now = request.app[CLOCK].now()
    idle_limit = request.app[SETTINGS].ui_idle_minutes * 60
    if now.timestamp() - seen > idle_limit:
        async with request.app[DB].begin() as conn:
            await admin_auth.revoke_session(conn, jti, now)
        _forget_user(session)
        flash_message(session, "You were signed out after a period of inactivity.", "info")
        return None
    async with request.app[DB].connect() as conn:
        user = await admin_auth.authenticate_session(conn, jti, uid, now=now)
    if user is None:
        _forget_user(session)
        return None
    if now.timestamp() - seen >= SEEN_RESOLUTION_SECONDS:
        session["seen"] = int(now.timestamp())
    return user


def _forget_user(session: Session) -> None:
    for name in ("uid", "jti", "seen"):
        session.pop(name, None)


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, made on first use (the sign-in form has one before anyone signs in)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_ok(request: web.Request, given: object) -> bool:
    """Whether `given` is this session's CSRF token (constant-time comparison)."""
    session = await get_session(request)
    expected = session.get("csrf")
    if not isinstance(expected, str) or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# ------------------------------------------------------------------------------------------------
# Messages shown once after a redirect ("Workspace created", "Key revoked")


def flash_message(session: Session, text: str, kind: str = "success") -> None:
    messages = list(session.get("flash") or [])
    messages.append({"text": text, "kind": kind})
    session["flash"] = messages[-5:]


async def flash(request: web.Request, text: str, kind: str = "success") -> None:
    """Show `text` on the next page rendered for this session. kind: success, info, warning, error."""
    flash_message(await get_session(request), text, kind)


async def take_flashes(request: web.Request) -> list[dict[str, str]]:
    session = await get_session(request)
    messages = session.pop("flash", None) or []
    return [m for m in messages if isinstance(m, dict)]

