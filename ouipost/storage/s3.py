"""Media in an S3 bucket (AWS or any S3-compatible server) through aiobotocore.

Clients fetch media straight from the bucket with presigned GET URLs (SigV4, query-string signed);
the application never proxies the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal

import botocore.session
import botocore.signers
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ouipost.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectNotFound,
    Storage,
    StorageError,
    check_expires_in,
    check_key,
)

MULTIPART_THRESHOLD = 16 * 1024 * 1024  # files this big go up in parts
PART_SIZE = 8 * 1024 * 1024  # S3 needs ≥ 5 MiB per part except the last
_MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer


def _is_not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "404", "NotFound") or status == 404


class S3Storage(Storage):
    """Objects in `bucket` under an optional `prefix`.

    Credentials and region come from the arguments, else from the usual AWS sources (environment,
    shared config, instance role). With `endpoint_url` (MinIO, Ceph, moto...) path-style addressing is
    used unless `addressing_style` says otherwise.
    """

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        prefix: str = "",
        addressing_style: Literal["auto", "virtual", "path"] | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (S3's minimum part size)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client_args: dict[str, Any] = {
            "region_name": region or "us-east-1",
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "aws_session_token": session_token,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        self._session = get_session()
        self._exit_stack: AsyncExitStack | None = None
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        # Presigning is pure computation, but aiobotocore makes it a coroutine; a plain botocore client
        # with the same settings signs synchronously, which is what `url()` needs.
        self._presigner = botocore.session.get_session().create_client("s3", **self._client_args)

    def _object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _get_client(self) -> Any:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    stack = AsyncExitStack()
                    self._client = await stack.enter_async_context(
                        self._session.create_client("s3", **self._client_args)
                    )
                    self._exit_stack = stack
        return self._client

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        object_key = self._object_key(key)
        client = await self._get_client()
        path = Path(path)
        size = await asyncio.to_thread(os.path.getsize, path)
        try:
            if size < self.multipart_threshold:
                body = await asyncio.to_thread(path.read_bytes)
                await client.put_object(Bucket=self.bucket, Key=object_key, Body=body, ContentType=content_type)
            else:
                await self._multipart_upload(client, object_key, path, content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"uploading {key!r} to S3 failed: {exc}") from exc
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)

    async def _multipart_upload(self, client: Any, object_key: str, path: Path, content_type: str) -> None:
        created = await client.create_multipart_upload(Bucket=self.bucket, Key=object_key, ContentType=content_type)
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with open(path, "rb") as f:
                number = 1
                # One part in memory at a time: a 1 GB video costs part_size of RAM, not 1 GB.
                while chunk := await asyncio.to_thread(f.read, self.part_size):
                    answer = await client.upload_part(
                        Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    number += 1
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Abandoned parts are billed until aborted.
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            raise

    async def open(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        object_key = self._object_key(key)
        client = await self._get_client()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(f"no media stored under {key!r}") from exc
            raise StorageError(f"reading {key!r} from S3 failed: {exc}") from exc
        return self._chunks(answer["Body"], chunk_size)

    @staticmethod
    async def _chunks(body: Any, chunk_size: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        client = await self._get_client()
        try:
            await client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if not _is_not_found(exc):
                raise StorageError(f"deleting {key!r} from S3 failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        client = await self._get_client()
        try:
            await client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise StorageError(f"checking {key!r} on S3 failed: {exc}") from exc
        return True

    def url(self, key: str, *, expires_in: int) -> str:
        expires_in = check_expires_in(expires_in)
        if expires_in > _MAX_PRESIGN_SECONDS:
            raise ValueError("S3 presigned URLs can live at most 7 days (604800 s)")
        # The function botocore attaches to every client as its generate_presigned_url method, called
        # as such (a client's methods are added at run time, so a type checker does not see them).
        return str(botocore.signers.generate_presigned_url(
            self._presigner, "get_object", Params={"Bucket": self.bucket, "Key": self._object_key(key)},
            ExpiresIn=expires_in,
        ))

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = {"backend": self.kind, "bucket": self.bucket}
        try:
            client = await self._get_client()
            await client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError) as exc:
            return {**result, "status": "error", "error": str(exc)}
        # Used bytes would need listing every object: not cheap on S3, so not reported.
        return {**result, "status": "ok"}

    async def close(self) -> None:
        if self._exit_stack is not None:
            await self._exit_stack.aclose()
            self._exit_stack, self._client = None, None
        self._presigner.close()


__all__ = ["MULTIPART_THRESHOLD", "PART_SIZE", "S3Storage"]
