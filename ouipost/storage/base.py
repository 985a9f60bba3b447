"""The media storage interface: local disk and S3 implement it the same way.

Keys are relative, slash-separated names chosen by the application (for example
``ws_.../media_....jpg``); every backend refuses keys that could escape their namespace.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

DEFAULT_CHUNK_SIZE = 256 * 1024


class StorageError(Exception):
    """A storage operation failed (backend unreachable, permission denied, ...)."""


class InvalidKey(StorageError, ValueError):
    """The key is absolute, empty, or walks out of the storage (``..``), or holds control characters."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object is stored under this key."""


def check_key(key: str) -> str:
    """`key` itself when it is a safe relative key; raises InvalidKey otherwise.

    Refused: empty keys, absolute paths (``/x``, ``C:\\x``), backslashes, ``.``/``..`` segments, empty
    segments (``a//b``), segments starting with a dot (hidden files; also keeps backend bookkeeping
    apart), control characters, and keys over 1,024 bytes (S3's limit).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("storage key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidKey("storage key is longer than 1024 bytes")
    if key.startswith("/") or "\\" in key or (len(key) > 1 and key[1] == ":"):
        raise InvalidKey(f"storage key {key!r} must be a relative path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidKey("storage key contains control characters")
    for segment in key.split("/"):
        if not segment or segment in (".", "..") or segment.startswith("."):
            raise InvalidKey(f"storage key {key!r} has an empty, dot or dot-dot segment")
    if posixpath.normpath(key) != key:
        raise InvalidKey(f"storage key {key!r} is not in normal form")
    return key


class Storage(ABC):
    """Where media files live. One instance per application, shared by every request."""

    kind: str = "abstract"

    @abstractmethod
    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the finished temp file at `path` under `key` (replacing any object there).

        The temp file is consumed: moved (local) or uploaded and then removed (S3). Raises InvalidKey,
        or StorageError/OSError when the backend fails (the temp file is then left for the caller).
        """

    @abstractmethod
    async def open(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """An async iterator over the object's bytes: ``async for chunk in await storage.open(key)``.

        Raises ObjectNotFound at once (before any chunk) when the key holds nothing.
        """

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    def url(self, key: str, *, expires_in: int) -> str:
        """A URL that serves the object to anyone holding it, for `expires_in` seconds (signed).

        Raises ValueError when expires_in is not positive, InvalidKey for a bad key.
        """

    @abstractmethod
    async def health(self) -> dict[str, Any]:
        """{"status": "ok" | "error", "backend": ..., ...}: a cheap liveness check for /healthz."""

    async def close(self) -> None:  # noqa: B027 - optional hook, not every backend holds resources
        """Release connections and other resources; the storage is unusable afterwards."""


def check_expires_in(expires_in: int) -> int:
    """`expires_in` when it is a positive whole number of seconds; ValueError otherwise."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise ValueError(f"expires_in must be a positive number of seconds (got {expires_in!r})")
    return expires_in


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "InvalidKey",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "check_expires_in",
    "check_key",
]
