"""Starts the web application with uvicorn (`loyalty-ledger web`, `python -m clients.web`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parser() -> argparse.ArgumentParser:
    from clients.web import config

    root = argparse.ArgumentParser(
        prog="loyalty-ledger web",
        description="The marketing console (/console) and the storefront page (/storefront/LINK) "
        "on a running ledger.",
    )
    config.add_flags(root)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    try:
        import uvicorn

        from clients.web import config, sessions
        from clients.web.app import create_app
    except ImportError as missing:
        print(f"error: {missing.name} is not installed: pip install -e '.[web]'", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    try:
        settings, listen = config.from_args(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.link:
        print(sessions.storefront_link(settings.secret, args.link))
        return 0
    host, _, port = listen.rpartition(":")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=host.strip("[]"), port=int(port), log_level="warning", access_log=False
        )
    )
    print(f"web console on http://{listen}/console (ledger at {settings.target})", flush=True)
    server.run()
    return 0
