"""Run the sandbox alone: `python -m ouipost.sandbox --port 9000`."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from ouipost.sandbox.core import create_sandbox_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ouipost.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(create_sandbox_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
