"""TLS and mutual TLS for the gRPC server: certificate paths in, server credentials out.

`TlsConfig` names PEM files: the server's certificate chain and private key, and
optionally a client CA bundle. With a client CA every client must present a
certificate signed by it (mutual TLS); without one the server is plain TLS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

ENV_CERT = "LOYALTY_TLS_CERT"
ENV_KEY = "LOYALTY_TLS_KEY"
ENV_CLIENT_CA = "LOYALTY_TLS_CLIENT_CA"


@dataclass(frozen=True)
class TlsConfig:
    cert_path: str
    key_path: str
    client_ca_path: str | None = None

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca_path)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Reads the PEM files now; a missing or unreadable file fails the start, not a call."""
        cert = _read(self.cert_path, "--tls-cert")
        key = _read(self.key_path, "--tls-key")
        client_ca = _read(self.client_ca_path, "--tls-client-ca") if self.client_ca_path else None
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )


def _read(path: str, option: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{option}: cannot read {path}: {error.strerror or error}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{option}: {path} is not a PEM file")
    return data


def from_settings(cert: str | None, key: str | None, client_ca: str | None) -> TlsConfig | None:
    """None (plaintext) when neither certificate nor key is given; both or neither."""
    cert, key, client_ca = cert or None, key or None, client_ca or None
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    return TlsConfig(cert, key, client_ca)


def from_environment() -> TlsConfig | None:
    return from_settings(os.environ.get(ENV_CERT), os.environ.get(ENV_KEY), os.environ.get(ENV_CLIENT_CA))
