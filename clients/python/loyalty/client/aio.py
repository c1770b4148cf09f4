"""AsyncLedgerClient: the asyncio client (grpc.aio), with the same methods, retries and
idempotency keys as LedgerClient; each method is a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from loyalty.client import connection
from loyalty.client._methods import AsyncLedgerMethods
from loyalty.client.errors import LedgerApiError
from loyalty.client.retries import RetryPolicy, with_key

Response = TypeVar("Response", bound=Message)


class AsyncLedgerClient(AsyncLedgerMethods):
    """As LedgerClient, on grpc.aio: use it inside one event loop (`async with
    AsyncLedgerClient(...) as ledger: await ledger.earn(...)`)."""

    def __init__(
        self,
        target: str | Sequence[str],
        api_key: str,
        *,
        policy: RetryPolicy | None = None,
        channel: grpc.aio.Channel | None = None,
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
                self._channel = grpc.aio.secure_channel(address, creds, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(address, options=options)
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    async def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _invoke(self, rpc: connection.Rpc[Any, Response], request: Any, timeout: float | None) -> Response:
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
                response: Response = await call(request, metadata=self._metadata, timeout=operation.timeout())
                return response
            except grpc.aio.AioRpcError as error:
                pause = operation.retry(error.code())
                if pause is None:
                    raise LedgerApiError.from_rpc_error(error, key) from None
                await asyncio.sleep(pause)

    def _stream(
        self, rpc: connection.Rpc[Any, Response], request: Any, timeout: float | None
    ) -> AsyncIterator[Response]:
        return self._streamed(rpc, request, timeout)

    async def _streamed(
        self, rpc: connection.Rpc[Any, Response], request: Any, timeout: float | None
    ) -> AsyncIterator[Response]:
        call = self._channel.unary_stream(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        try:
            async for response in call(request, metadata=self._metadata, timeout=timeout):
                yield response
        except grpc.aio.AioRpcError as error:
            raise LedgerApiError.from_rpc_error(error) from None
