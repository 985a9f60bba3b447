"""Fixtures for adapter tests: the sandbox over real HTTP, an adapter factory, served media."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ouipost.platforms.base import ClientCredentials, MediaFile, PlatformAdapter
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import get_platform
from tests.media_samples import jpeg_bytes, mp4_bytes, png_bytes

CLIENT = ClientCredentials(client_id="sandbox-client", client_secret="sandbox-secret")


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def platform_http(http_session: aiohttp.ClientSession, sandbox_url: str) -> PlatformHttp:
    return PlatformHttp(http_session, base_url=sandbox_url, timeout=5)


@pytest.fixture
def make_adapter(platform_http: PlatformHttp) -> Callable[[str], PlatformAdapter]:
    def make(network: str) -> PlatformAdapter:
        module_name, _, class_name = get_platform(network).adapter.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(platform_http, CLIENT)

    return make


@pytest.fixture
async def media_server(aiohttp_server: Any) -> dict[str, Any]:
    """A plain file server for pull-from-URL flows: put bytes in `files[name]`, fetch at base/name."""
    files: dict[str, tuple[bytes, str]] = {}

    async def serve(request: web.Request) -> web.Response:
        item = files.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        return web.Response(body=item[0], content_type=item[1])

    app = web.Application()
    app.router.add_get("/media/{name}", serve)
    server = await aiohttp_server(app)
    return {"files": files, "base": str(server.make_url("/media/"))}


@pytest.fixture
def make_media(media_server: dict[str, Any]) -> Callable[..., MediaFile]:
    """make_media("image"|"png"|"video", **sample_kwargs) -> a MediaFile with real bytes and a URL."""

    def make(kind: str = "image", alt_text: str | None = None, **kwargs: Any) -> MediaFile:
        if kind == "video":
            data, mime, ext, media_kind = mp4_bytes(**kwargs), "video/mp4", "mp4", "video"
        elif kind == "png":
            data, mime, ext, media_kind = png_bytes(**kwargs), "image/png", "png", "image"
        else:
            data, mime, ext, media_kind = jpeg_bytes(**kwargs), "image/jpeg", "jpg", "image"
        name = f"m{len(media_server['files']) + 1}.{ext}"
        media_server["files"][name] = (data, mime)

        async def stream(chunk_size: int) -> AsyncIterator[bytes]:
            for start in range(0, len(data), chunk_size):
                yield data[start:start + chunk_size]

        return MediaFile(
            kind=media_kind, mime_type=mime, size=len(data), url=media_server["base"] + name,
            stream=stream, filename=name, width=kwargs.get("width"), height=kwargs.get("height"),
            duration=kwargs.get("duration", 12.5) if media_kind == "video" else None, alt_text=alt_text,
        )

    return make
