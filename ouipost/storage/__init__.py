"""Media storage: one interface (`Storage`), two backends (local disk, S3).

`create_storage("local", root=..., public_url=..., secret=...)` or
`create_storage("s3", bucket=..., endpoint_url=..., region=...)`.
"""

from __future__ import annotations

from typing import Any

from ouipost.core.clock import Clock
from ouipost.storage.base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectNotFound,
    Storage,
    StorageError,
    check_key,
)

STORAGE_KINDS = ("local", "s3")


def create_storage(kind: str, **options: Any) -> Storage:
    """A storage backend of `kind` built with `options` (the backend's constructor arguments).

    Raises ValueError for an unknown kind; TypeError for options the backend does not take. The S3
    backend is imported only when asked for, so local installs need no AWS libraries loaded.
    """
    if kind == "local":
        from ouipost.storage.local import LocalStorage

        return LocalStorage(**options)
    if kind == "s3":
        from ouipost.storage.s3 import S3Storage

        return S3Storage(**options)
    raise ValueError(f"unknown storage kind {kind!r}; expected one of {', '.join(STORAGE_KINDS)}")


def storage_from_settings(settings: Any, clock: Clock | None = None) -> Storage:
    """The media storage the settings ask for: local disk under the data dir (URLs signed with a key
    derived from the secret key), or the S3 bucket."""
    if settings.storage == "s3":
        return create_storage(
            "s3", bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    from pathlib import Path

    from ouipost.core.crypto import derive_key

    return create_storage(
        "local", root=Path(settings.data_dir) / "media", public_url=settings.public_url,
        secret=derive_key(settings.secret_key, "ouipost/media-urls/v1"), clock=clock,
    )


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "STORAGE_KINDS",
    "InvalidKey",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "check_key",
    "create_storage",
    "storage_from_settings",
]
