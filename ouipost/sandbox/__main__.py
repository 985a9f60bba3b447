"""Run the sandbox alone: `python -m ouipost.sandbox --port 9000`."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from ouipost.sandbox.core import HEALTH_PATH, create_sandbox_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ouipost.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_sandbox_app()
    app.router.add_get("/healthz", _healthz)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    # aiohttp prints once bound; a port that is taken raises before anything is printed.
    web.run_app(app, host=args.host, port=args.port, print=lambda _: print(
        f"Oui Post sandbox listening on http://{shown}:{args.port} (health: {HEALTH_PATH} and /healthz); "
        "point OUIPOST_PLATFORM_BASE_URL at it", flush=True))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sandbox": True})


if __name__ == "__main__":
    main()
