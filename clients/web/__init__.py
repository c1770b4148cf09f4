"""The marketing console and the storefront page: a small web application on the SDK.

`loyalty-ledger web` (or `python -m clients.web`) serves both next to a running ledger. The
API keys stay on this server: a marketing person signs in with a key that is kept in the
server's memory (the browser holds a signed session id), and the storefront page is read
with the storefront key this server was started with.
"""

from clients.web.app import create_app
from clients.web.config import WebConfig
from clients.web.sessions import storefront_link

__all__ = ["WebConfig", "create_app", "storefront_link"]
