"""LedgerClient: the blocking client, one method per RPC of loyalty.v1 (generated in
_methods.py from the proto files), with retries under one idempotency key."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from loyalty.client import connection
from loyalty.client._methods import LedgerMethods
from loyalty.client.errors import LedgerApiError
from loyalty.client.retries import RetryPolicy, with_key

Response = TypeVar("Response", bound=Message)


class LedgerClient(LedgerMethods):
    """A connection to one loyalty ledger server with one API key; safe to share between
    threads. `target` is "host:port", or a list of "IP:port" of several servers, over which
    calls are spread round robin among those whose health check says SERVING (gRPC's own
    load balancing); ignored when you pass your own `channel`, which the client then does
    not close. TLS: `root_certificates` (PEM of the CA that signed the
    server's certificate; None with tls=True uses the system roots), plus `private_key` and
    `certificate_chain` for mutual TLS. `policy` sets the retries and deadlines.

    Every method takes the request's fields as keyword arguments (or a whole request
    message as `request=`) and `timeout`, the operation's overall deadline in seconds,
    retries included. A mutating request gets an idempotency key (a uuid4) unless you give
    one, and every retry sends the same, so the ledger applies it once; UNAVAILABLE and
    ABORTED are retried with exponential backoff and full jitter. Failures raise
    LedgerApiError."""

    def __init__(
        self,
        target: str | Sequence[str],
        api_key: str,
        *,
        policy: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        tls: bool | None = None,
    ) -> None:
        self._metadata = connection.key_metadata(api_key)
        self.policy = policy or RetryPolicy()
        creds = connection.credentials(root_certificates, private_key, certificate_chain, tls)
        self._owns_channel = channel is None
        if channel is not None:
            self._channel = channel
        else:
            address, options = connection.channel_target(target)
            if creds is not None:
                self._channel = grpc.secure_channel(address, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(address, options=options)
        self._callables: dict[str, grpc.UnaryUnaryMultiCallable[Any, Any]] = {}

    def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _invoke(self, rpc: connection.Rpc[Any, Response], request: Any, timeout: float | None) -> Response:
        key = with_key(request)
        call = self._callables.get(rpc.path)
        if call is None:
            call = self._callables[rpc.path] = self._channel.unary_unary(
                rpc.path,
                request_serializer=rpc.request.SerializeToString,
                response_deserializer=rpc.response.FromString,
            )
        operation = self.policy.start(timeout)
        while True:
            try:
                response: Response = call(request, metadata=self._metadata, timeout=operation.timeout())
                return response
            except grpc.RpcError as error:
                pause = operation.retry(error.code())
                if pause is None:
                    raise LedgerApiError.from_rpc_error(error, key) from None
                time.sleep(pause)

    def _stream(self, rpc: connection.Rpc[Any, Response], request: Any, timeout: float | None) -> Iterator[Response]:
        call = self._channel.unary_stream(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        try:
            for response in call(request, metadata=self._metadata, timeout=timeout):
                yield response
        except grpc.RpcError as error:
            raise LedgerApiError.from_rpc_error(error) from None
