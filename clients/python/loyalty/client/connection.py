"""What both clients need to open a channel: credentials for TLS or mutual TLS, the key's
metadata, and each RPC's path and message classes."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any, Generic, NamedTuple, TypeVar

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


# gRPC's own client-side load balancing: a subchannel per address, calls spread round robin
# over those whose grpc.health.v1 Health watch says SERVING (the server turns NOT_SERVING
# when its database does not answer), so a dead or cut-off server leaves the rotation.
ROUND_ROBIN_WITH_HEALTH = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


def channel_target(target: str | Sequence[str]) -> tuple[str, list[tuple[str, Any]]]:
    """The channel target and options for one "host:port", or for several servers given as
    a sequence of "IP:port" (balanced round robin with health checking, over gRPC's
    `ipv4:`/`ipv6:` target). For a DNS name that resolves to every server, pass
    "dns:///name:port" as one target with the options of `balanced_options()`."""
    if isinstance(target, str):
        return target, []
    addresses = list(target)
    if not addresses:
        raise ValueError("no target given")
    families = set()
    for address in addresses:
        host = address.rpartition(":")[0].strip("[]")
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(f"several targets must be IP:port, got {address!r} (or use one dns:/// target)") from None
    if len(families) > 1:
        raise ValueError("several targets must all be IPv4 or all IPv6")
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(addresses)}", balanced_options()


def balanced_options() -> list[tuple[str, Any]]:
    return [("grpc.service_config", ROUND_ROBIN_WITH_HEALTH)]
