"""Serving the app: errors aiohttp answers before any handler runs, in the JSON envelope.

A request that cannot be parsed (a header or request line over aiohttp's 8 KB limits, an invalid
header character, a bad method, a broken chunked body) never reaches the app, its middlewares or
its `on_response_prepare` hooks: aiohttp's protocol handler answers it itself, in text/plain, with
a message that quotes the offending input and a `Server: Python/... aiohttp/...` banner. The hook
aiohttp offers for those answers is `RequestHandler.handle_error`; `EnvelopeRequestHandler`
overrides it to answer in the API's envelope, with a fixed message per kind of error (the input is
never echoed) and the same headers as every other answer. `EnvelopeAppRunner` is an `AppRunner`
whose connections use that handler; `run_app` serves with it (what `run.py serve` calls).

Deployments that run the app under another server (gunicorn's aiohttp worker) keep aiohttp's own
protocol error answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, InvalidHeader, LineTooLong
from aiohttp.web_protocol import RequestHandler

from ouipost.http.web import dumps

log = logging.getLogger("ouipost.http")


class _EnvelopeResponse(web.Response):
    """A JSON error answer written by the protocol handler, where no app hook runs."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        # aiohttp adds its banner while preparing; no hook runs after it for protocol errors.
        self.headers.popall("Server", None)


def protocol_error_response(status: int, exc: BaseException | None) -> web.Response:
    """The envelope answer for a request aiohttp could not parse or handle: fixed texts only."""
    if status >= 500:
        code, message = ("INTERNAL_ERROR", "Something went wrong on our side") if status == 500 else (
            "SERVICE_UNAVAILABLE", "The request took too long to handle")
    else:
        code, message = "BAD_REQUEST", "The request is not valid HTTP"
        if isinstance(exc, LineTooLong):
            message = "The request line or a header is too long (at most 8 KB each)"
        elif isinstance(exc, InvalidHeader):
            message = "A request header has an invalid name or value"
        elif isinstance(exc, BadHttpMethod):
            message = "The request method is not valid"
    body = {"success": False, "error": {"code": code, "message": message, "details": {}}}
    response = _EnvelopeResponse(
        status=status, text=dumps(body), content_type="application/json",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                 "X-Request-ID": f"req_{secrets.token_hex(12)}"},
    )
    response.force_close()
    return response


class EnvelopeRequestHandler(RequestHandler):
    """aiohttp's protocol handler, answering its own errors in the envelope."""

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None,
    ) -> web.StreamResponse:
        # One line, without the exception's text: it quotes the client's input (headers may hold tokens).
        if isinstance(exc, HttpProcessingError):
            log.info("refused a malformed request from %s: %s (%d)", request.remote, type(exc).__name__, status)
        elif exc is not None:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        return protocol_error_response(status, exc)


class _EnvelopeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class EnvelopeAppRunner(web.AppRunner):
    """An AppRunner whose connections answer protocol errors in the envelope."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app builds a plain Server; only how it makes its per-connection handler changes.
        server.__class__ = _EnvelopeServer
        return server


async def _serve(
    app: web.Application, host: str, port: int, sock: socket.socket | None, **runner_options: Any
) -> None:
    runner = EnvelopeAppRunner(app, handle_signals=False, **runner_options)
    _stop_once_on_signals(asyncio.get_running_loop())  # before setup: an on_startup hook may set its own
    await runner.setup()
    try:
        site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port)
        await site.start()
        await asyncio.Event().wait()  # until SIGINT/SIGTERM raise GracefulExit out of the loop
    finally:
        await runner.cleanup()


def _stop_once_on_signals(loop: asyncio.AbstractEventLoop) -> None:
    """SIGINT/SIGTERM stop the server once. aiohttp's own handlers raise GracefulExit on every
    signal, also in the middle of the cleanup the first one started (a terminal's Ctrl-C reaches the
    whole process group; systemd may signal again): that cut the usage flush short and exited 1.
    Later signals are logged and ignored; SIGKILL remains for a stop that hangs."""
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if stopping:
            log.warning("already stopping (writing usage counters, closing connections); SIGKILL quits at once")
            return
        stopping = True
        raise web.GracefulExit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)


def run_app(
    app: web.Application, *, host: str, port: int, sock: socket.socket | None = None, **runner_options: Any
) -> None:
    """Serve `app` on host:port (or on `sock`, already bound) until SIGINT or SIGTERM, then shut down
    gracefully, as `aiohttp.web.run_app` does (with EnvelopeAppRunner): the app's cleanup runs while
    its own background tasks still live, and only then is every remaining task cancelled.
    `runner_options` go to the runner (access_log_class, access_log...)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, host, port, sock, **runner_options))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()  # runs _serve's cleanup
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
