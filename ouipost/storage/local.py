"""Media on the local disk, served by the application itself through signed, expiring URLs.

A URL looks like ``{public_url}/media/files/{key}?expires=<epoch>&signature=<hex>``, where the
signature is HMAC-SHA256 over ``key + "\\n" + expires`` with a key derived from the application secret
(derived, so a media signature can never be replayed as anything else the secret signs).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ouipost.core.clock import Clock
from ouipost.storage.base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectNotFound,
    Storage,
    check_expires_in,
    check_key,
)

FILE_ROUTE = "/media/files/{key:.+}"
_META_DIR = ".meta"  # content types, beside the files; keys cannot start with a dot, so no clash
_DIR_MODE, _FILE_MODE = 0o700, 0o600


def _make_dirs(path: Path) -> None:
    """Create `path` and any missing parents, each readable by the owner only."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    path.mkdir(mode=_DIR_MODE, exist_ok=True)


class LocalStorage(Storage):
    """Files under `root` (created when missing); URLs point at `public_url` + FILE_ROUTE."""

    kind = "local"

    def __init__(
        self, root: str | os.PathLike[str], *, public_url: str, secret: str | bytes,
        clock: Clock | None = None,
    ) -> None:
        if not secret:
            raise ValueError("LocalStorage needs a secret to sign media URLs")
        self.root = Path(root).resolve()
        _make_dirs(self.root)
        self.public_url = public_url.rstrip("/")
        raw = secret.encode() if isinstance(secret, str) else secret
        self._signing_key = hmac.new(raw, b"ouipost media url v1", hashlib.sha256).digest()
        self._clock = clock or Clock()  # URL expiries: a test moves time instead of waiting

    # ------------------------------------------------------------------ paths

    def path_for(self, key: str) -> Path:
        """The file that holds `key`; raises InvalidKey for keys that would leave the root."""
        check_key(key)
        path = (self.root / key).resolve()
        # A symlink planted inside the root must not lead out of it either.
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} leaves the storage root")
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / key

    def content_type(self, key: str) -> str:
        """The content type given to put_file for `key` (application/octet-stream if unknown)."""
        try:
            return self._meta_path(check_key(key)).read_text("utf-8").strip() or "application/octet-stream"
        except OSError:
            return "application/octet-stream"

    # ------------------------------------------------------------------ operations

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        dest = self.path_for(key)
        await asyncio.to_thread(self._put_file_sync, key, Path(path), dest, content_type)

    def _put_file_sync(self, key: str, source: Path, dest: Path, content_type: str) -> None:
        _make_dirs(dest.parent)
        meta = self._meta_path(key)
        _make_dirs(meta.parent)
        fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content_type)
        # Every stored file is its owner's alone, whatever made it (a temp file is 0600, a thumbnail
        # Pillow wrote follows the umask): only signed URLs hand them out.
        source.chmod(_FILE_MODE)
        try:
            os.replace(source, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Temp dir on another filesystem: copy beside the target, then swap in atomically.
            partial = dest.with_name(f".{dest.name}.partial")
            shutil.copyfile(source, partial)
            partial.chmod(_FILE_MODE)
            os.replace(partial, dest)
            source.unlink()

    async def open(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no media stored under {key!r}") from exc
        return self._chunks(handle, chunk_size)

    @staticmethod
    async def _chunks(handle: Any, chunk_size: int) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        for target in (path, self._meta_path(key)):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(target.unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    def now(self) -> float:
        """Now in epoch seconds, by the storage's clock."""
        return self._clock.now().timestamp()

    def sign(self, key: str, expires: int) -> str:
        """The hex HMAC-SHA256 signature of (key, expires)."""
        message = f"{key}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def url(self, key: str, *, expires_in: int) -> str:
        check_key(key)
        expires = int(self.now()) + check_expires_in(expires_in)
        return (
            f"{self.public_url}/media/files/{quote(key, safe='/')}"
            f"?expires={expires}&signature={self.sign(key, expires)}"
        )

    def verify(self, key: str, expires: str | None, signature: str | None) -> str | None:
        """None when (key, expires, signature) is a valid, unexpired grant; else why it is refused."""
        if not expires or not signature:
            return "This media URL is not signed"
        if not expires.isdigit():
            return "This media URL is not valid"
        expected = self.sign(key, int(expires))
        # Constant-time comparison: the signature must not leak byte by byte through timing.
        if not hmac.compare_digest(expected.encode(), signature.lower().encode("ascii", "replace")):
            return "This media URL's signature is not valid"
        if int(expires) < self.now():
            return "This media URL has expired"
        return None

    async def health(self) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            usage = shutil.disk_usage(self.root)
            writable = os.access(self.root, os.W_OK)
            return {
                "status": "ok" if writable else "error",
                "backend": self.kind,
                "writable": writable,
                "disk_total_bytes": usage.total,
                "disk_used_bytes": usage.used,
                "disk_free_bytes": usage.free,
            }

        try:
            return await asyncio.to_thread(check)
        except OSError as exc:
            return {"status": "error", "backend": self.kind, "error": exc.strerror or str(exc)}


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"success": False, "error": {"code": code, "message": message, "details": {}}}
    return web.json_response(body, status=status)


def make_file_handler(storage: LocalStorage) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``GET FILE_ROUTE``: serves a stored file to holders of a valid signed URL.

    403 FORBIDDEN (JSON envelope) for a missing, wrong or expired signature; 404 NOT_FOUND when the
    file is gone; otherwise the file, streamed with its stored content type (Range requests work).
    """

    async def serve_media_file(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        refusal = storage.verify(key, request.query.get("expires"), request.query.get("signature"))
        if refusal:
            return _error(403, "FORBIDDEN", refusal)
        try:
            path = storage.path_for(key)
        except InvalidKey:
            return _error(404, "NOT_FOUND", "Media not found")
        if not await asyncio.to_thread(path.is_file):
            return _error(404, "NOT_FOUND", "Media not found")
        remaining = max(0, int(request.query["expires"]) - int(storage.now()))
        return web.FileResponse(
            path,
            headers={
                "Content-Type": await asyncio.to_thread(storage.content_type, key),
                "Cache-Control": f"private, max-age={remaining}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return serve_media_file


__all__ = ["FILE_ROUTE", "LocalStorage", "make_file_handler"]
