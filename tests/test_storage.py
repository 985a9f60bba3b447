"""Media storage: the same behaviour from the local disk and from S3 (a real S3-compatible server).

The S3 backend runs against moto's S3 server. moto does not check presigned-URL signatures or expiry
(it answers 200 to a tampered or expired URL), so clients reach it through `SigV4Gateway`, a small
front that refuses what AWS S3 refuses (403 SignatureDoesNotMatch / AccessDenied "Request has
expired"), recomputing signatures with botocore's own SigV4 query signer, independently of the code
under test. Everything else is forwarded to moto unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ouipost.storage import InvalidKey, ObjectNotFound, Storage, create_storage
from ouipost.storage.local import FILE_ROUTE, LocalStorage, make_file_handler

ACCESS_KEY, SECRET_KEY, REGION = "AKIAOUIPOSTTEST", "ouipost-test-secret", "eu-west-1"


# ------------------------------------------------------------------------------------ the S3 server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _expected_signature(method: str, url: str) -> str | None:
    """The SigV4 query signature AWS would compute for this presigned URL (None if malformed)."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        timestamp, expires = params["X-Amz-Date"], int(params["X-Amz-Expires"])
    except (KeyError, ValueError):
        return None
    unsigned = {k: v for k, v in params.items() if not k.startswith("X-Amz-")}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    request = AWSRequest(method=method, url=base + (f"?{urlencode(unsigned)}" if unsigned else ""))
    request.context["timestamp"] = timestamp
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=expires).add_auth(request)
    return dict(parse_qsl(urlsplit(request.url).query))["X-Amz-Signature"]


def _s3_error(code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=403, text=body, content_type="application/xml")


def make_sigv4_gateway(upstream: str) -> web.Application:
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def forward(request: web.Request) -> web.StreamResponse:
        if "X-Amz-Signature" in request.query:
            date = datetime.strptime(request.query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if datetime.now(UTC) > date + timedelta(seconds=int(request.query.get("X-Amz-Expires", "0"))):
                return _s3_error("AccessDenied", "Request has expired")
            if _expected_signature(request.method, str(request.url)) != request.query["X-Amz-Signature"]:
                return _s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with request.app[session_key].request(
            request.method, upstream + request.path_qs, headers=headers, data=io.BytesIO(await request.read())
        ) as answer:
            body = await answer.read()
            passed = {k: v for k, v in answer.headers.items()
                      if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
            return web.Response(status=answer.status, body=body, headers=passed)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[session_key] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app[session_key].close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


# ------------------------------------------------------------------------------------ both backends


@dataclass
class Backend:
    name: str
    storage: Storage


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])  # s3: a moto server
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any, unused_tcp_port_factory: Any
) -> AsyncIterator[Backend]:
    if request.param == "local":
        port = unused_tcp_port_factory()
        storage = create_storage(
            "local", root=tmp_path / "media", public_url=f"http://127.0.0.1:{port}", secret="x" * 40
        )
        app = web.Application()
        app.router.add_get(FILE_ROUTE, make_file_handler(storage))
        await aiohttp_server(app, port=port)
    else:
        moto = request.getfixturevalue("moto_endpoint")
        gateway = await aiohttp_server(make_sigv4_gateway(moto))
        bucket = f"media-{uuid.uuid4().hex[:12]}"
        storage = create_storage(
            "s3", bucket=bucket, endpoint_url=str(gateway.make_url("")).rstrip("/"), region=REGION,
            access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
            multipart_threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024,
        )
        client = await storage._get_client()
        await client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        yield Backend(request.param, storage)
    finally:
        await storage.close()


def _temp_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"upload-{uuid.uuid4().hex}.part"
    path.write_bytes(data)
    return path


async def _read_all(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in await storage.open(key, chunk_size=64 * 1024)])


async def _get(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, await answer.read(), answer.headers.get("Content-Type", "")


def _tamper(url: str) -> str:
    # Flip the last hex digit of the signature, whatever the backend calls it.
    return url[:-1] + ("0" if url[-1] != "0" else "1")


async def test_stored_file_reads_back_identically(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(3_000_000)  # under the multipart threshold: one PUT
    source = _temp_file(tmp_path, data)
    await backend.storage.put_file("ws_1/media_a.jpg", source, "image/jpeg")
    assert await backend.storage.exists("ws_1/media_a.jpg")
    assert await _read_all(backend.storage, "ws_1/media_a.jpg") == data
    assert not source.exists(), "put_file consumes the temp file"


async def test_large_file_round_trip(backend: Backend, tmp_path: Path) -> None:
    # Over the S3 backend's multipart threshold: goes up in three parts.
    data = os.urandom(11 * 1024 * 1024 + 123)
    await backend.storage.put_file("ws_1/video.mp4", _temp_file(tmp_path, data), "video/mp4")
    got = await _read_all(backend.storage, "ws_1/video.mp4")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_signed_url_serves_the_file_over_http(backend: Backend, tmp_path: Path) -> None:
    await backend.storage.put_file("ws_1/photo.png", _temp_file(tmp_path, b"\x89PNG fake"), "image/png")
    status, body, content_type = await _get(backend.storage.url("ws_1/photo.png", expires_in=300))
    assert (status, body) == (200, b"\x89PNG fake")
    assert content_type.startswith("image/png")


async def test_tampered_url_is_refused(backend: Backend, tmp_path: Path) -> None:
    await backend.storage.put_file("ws_1/photo.png", _temp_file(tmp_path, b"secret"), "image/png")
    status, body, _ = await _get(_tamper(backend.storage.url("ws_1/photo.png", expires_in=300)))
    assert status == 403
    assert b"secret" not in body


async def test_url_for_another_key_is_refused(backend: Backend, tmp_path: Path) -> None:
    await backend.storage.put_file("ws_1/mine.png", _temp_file(tmp_path, b"mine"), "image/png")
    await backend.storage.put_file("ws_2/theirs.png", _temp_file(tmp_path, b"theirs"), "image/png")
    url = backend.storage.url("ws_1/mine.png", expires_in=300)
    status, body, _ = await _get(url.replace("ws_1/mine.png", "ws_2/theirs.png"))
    assert status == 403
    assert body != b"theirs"


@pytest.mark.slow  # waits 2 s for the URL to expire
async def test_expired_url_is_refused(backend: Backend, tmp_path: Path) -> None:
    await backend.storage.put_file("ws_1/photo.png", _temp_file(tmp_path, b"data"), "image/png")
    url = backend.storage.url("ws_1/photo.png", expires_in=1)
    assert (await _get(url))[0] == 200
    await asyncio.sleep(2.1)
    status, body, _ = await _get(url)
    assert status == 403
    assert body != b"data"


async def test_deleted_file_is_gone_everywhere(backend: Backend, tmp_path: Path) -> None:
    await backend.storage.put_file("ws_1/gone.jpg", _temp_file(tmp_path, b"bye"), "image/jpeg")
    url = backend.storage.url("ws_1/gone.jpg", expires_in=300)
    await backend.storage.delete("ws_1/gone.jpg")
    assert not await backend.storage.exists("ws_1/gone.jpg")
    # Not served any more: 404, or on S3 403, which is what S3 answers for a missing key to whoever
    # may not list the bucket (a signed URL's holder), and what the test server sometimes answers.
    assert (await _get(url))[0] in ((404,) if backend.name == "local" else (403, 404))
    with pytest.raises(ObjectNotFound):
        await backend.storage.open("ws_1/gone.jpg")
    await backend.storage.delete("ws_1/gone.jpg")  # deleting twice is fine


@pytest.mark.parametrize("key", ["../outside.txt", "/etc/passwd", "a/../../b", "a//b", ".hidden", "", "a\\b"])
async def test_keys_that_leave_the_storage_are_refused(backend: Backend, tmp_path: Path, key: str) -> None:
    source = _temp_file(tmp_path, b"x")
    with pytest.raises(InvalidKey):
        await backend.storage.put_file(key, source, "text/plain")
    with pytest.raises(InvalidKey):
        backend.storage.url(key, expires_in=60)
    with pytest.raises(InvalidKey):
        await backend.storage.open(key)
    assert source.exists()


async def test_health_reports_ok(backend: Backend) -> None:
    health = await backend.storage.health()
    assert health["status"] == "ok"
    assert health["backend"] == backend.name


async def test_non_positive_expiry_is_refused(backend: Backend) -> None:
    with pytest.raises(ValueError):
        backend.storage.url("ws_1/a.jpg", expires_in=0)


# ------------------------------------------------------------------------------------ local specifics


@pytest.fixture
async def local_server(tmp_path: Path, aiohttp_server: Any, unused_tcp_port_factory: Any) -> LocalStorage:
    port = unused_tcp_port_factory()
    storage = LocalStorage(tmp_path / "media", public_url=f"http://127.0.0.1:{port}", secret="s" * 40)
    app = web.Application()
    app.router.add_get(FILE_ROUTE, make_file_handler(storage))
    await aiohttp_server(app, port=port)
    return storage


async def test_local_refusals_use_the_json_envelope(local_server: LocalStorage, tmp_path: Path) -> None:
    await local_server.put_file("ws_1/a.jpg", _temp_file(tmp_path, b"jpg"), "image/jpeg")
    async with aiohttp.ClientSession() as http:
        async with http.get(_tamper(local_server.url("ws_1/a.jpg", expires_in=60))) as answer:
            assert answer.status == 403
            assert (await answer.json())["error"]["code"] == "FORBIDDEN"
            assert (await answer.json())["success"] is False
        async with http.get(local_server.url("ws_1/a.jpg", expires_in=60).split("?")[0]) as answer:
            assert answer.status == 403
        await local_server.delete("ws_1/a.jpg")
        async with http.get(local_server.url("ws_1/a.jpg", expires_in=60)) as answer:
            assert answer.status == 404
            assert (await answer.json())["error"] == {"code": "NOT_FOUND", "message": "Media not found", "details": {}}


async def test_local_traversal_never_serves_files_outside_the_root(local_server: LocalStorage, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    key = "../secret.txt"
    expires = int(local_server.now()) + 60
    # Even a correctly signed traversal key (as if the secret leaked) gets nothing.
    signature = local_server.sign(key, expires)
    url = f"{local_server.public_url}/media/files/%2E%2E/secret.txt?expires={expires}&signature={signature}"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status in (403, 404)
        assert "top secret" not in await answer.text()


async def test_local_symlink_out_of_the_root_is_refused(local_server: LocalStorage, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    (local_server.root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidKey):
        await local_server.open("link/secret.txt")


def test_unknown_storage_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown storage kind"):
        create_storage("ftp")
