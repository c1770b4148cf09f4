"""What both clients need to open a channel: credentials for TLS or mutual TLS, the key's
metadata, and each RPC's path and message classes."""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

import grpc
from google.protobuf.message import Message

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


class Rpc(NamedTuple, Generic[Request, Response]):
    path: str  # "/loyalty.v1.Ledger/Earn"
    request: type[Request]
    response: type[Response]


def credentials(
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
    tls: bool | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials when asked for (tls=True, or any PEM given); None for plaintext.
    root_certificates None with tls=True uses the system's roots; private_key and
    certificate_chain together make it mutual TLS."""
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("private_key and certificate_chain go together (mutual TLS)")
    given = any(pem is not None for pem in (root_certificates, private_key, certificate_chain))
    secure = tls if tls is not None else given
    if not secure:
        if given:
            raise ValueError("certificates given with tls=False")
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates, private_key=private_key, certificate_chain=certificate_chain
    )


def key_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    if not api_key:
        raise ValueError("api_key is required")
    return (("authorization", f"Bearer {api_key}"),)
