"""Writes the SDK's methods (loyalty/client/_methods.py) from the proto files' descriptors.

One method per RPC of every service, named in snake_case, taking the request's fields as
typed keyword arguments (or a whole request message) and `timeout`, documented with the
RPC's comment; and for every paginated List RPC an `iter_...` method that follows the
pages; a server-streaming RPC's method returns an iterator of its messages. The same
methods are written twice, blocking and asyncio, so both clients have
every RPC, and a new RPC reaches both by regenerating (`python -m ledger.codegen`).
"""

from __future__ import annotations

import re
import textwrap

from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    FDP.TYPE_STRING: "str",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_DOUBLE: "float",
    FDP.TYPE_FLOAT: "float",
}
_WELL_KNOWN = {
    ".google.protobuf.Timestamp": "datetime | timestamp_pb2.Timestamp",
    ".google.protobuf.FieldMask": "Sequence[str] | field_mask_pb2.FieldMask",
}
_SERVICE_FIELD, _METHOD_FIELD = 6, 2  # FileDescriptorProto.service, ServiceDescriptorProto.method


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Types:
    """Where each message and enum of the descriptor set lives: module alias and path."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.python: dict[str, str] = {}  # ".loyalty.v1.Order" -> "common_pb2.Order"
        for file in files.file:
            module = file.name.rsplit("/", 1)[-1].removesuffix(".proto") + "_pb2"
            self._walk(file.package, module, "", file.message_type, file.enum_type)

    def _walk(self, package: str, module: str, outer: str, messages, enums) -> None:
        for enum in enums:
            self.python[f".{package}.{outer}{enum.name}"] = f"{module}.{outer}{enum.name}"
        for message in messages:
            full = f".{package}.{outer}{message.name}"
            self.messages[full] = message
            self.python[full] = f"{module}.{outer}{message.name}"
            self._walk(package, module, f"{outer}{message.name}.", message.nested_type, message.enum_type)

    def annotation(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type == FDP.TYPE_MESSAGE:
            inner = _WELL_KNOWN[field.type_name] if field.type_name in _WELL_KNOWN else self.python[field.type_name]
        elif field.type == FDP.TYPE_ENUM:
            inner = f"{self.python[field.type_name]}.ValueType | str"
        else:
            inner = _SCALARS.get(field.type, "int")
        return f"Sequence[{inner}]" if field.label == FDP.LABEL_REPEATED else inner


def _comment(file: descriptor_pb2.FileDescriptorProto, service: int, method: int) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == [_SERVICE_FIELD, service, _METHOD_FIELD, method]:
            return " ".join(location.leading_comments.split())
    return ""


def _page_item(types: _Types, request: str, response: str) -> str | None:
    """The repeated field a List RPC pages through, when request and response paginate."""
    asks = {f.name for f in types.messages[request].field}
    answer = types.messages[response].field
    if {"page_token", "page_size"} <= asks and "next_page_token" in {f.name for f in answer}:
        repeated = [f.name for f in answer if f.label == FDP.LABEL_REPEATED and f.type == FDP.TYPE_MESSAGE]
        if len(repeated) == 1:
            return repeated[0]
    return None


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    types = _Types(files)
    constants: list[str] = []
    sync_methods: list[str] = []
    async_methods: list[str] = []
    seen: set[str] = set()
    for file in files.file:
        if file.package != "loyalty.v1":
            continue
        for s, service in enumerate(file.service):
            for m, method in enumerate(service.method):
                name = snake(method.name)
                if name in seen:
                    raise ValueError(f"two RPCs would both be the method {name}")
                seen.add(name)
                constant = name.upper()
                request, response = types.python[method.input_type], types.python[method.output_type]
                constants.append(
                    f'{constant}: Rpc[{request}, {response}] = Rpc("/{file.package}.{service.name}/{method.name}", '
                    f"{request}, {response})"
                )
                fields = list(types.messages[method.input_type].field)
                doc = _comment(file, s, m) or f"{service.name}.{method.name}."
                args = "".join(f"        {f.name}: {types.annotation(f)} | None = None,\n" for f in fields)
                build = ", ".join(f"{f.name}={f.name}" for f in fields)
                if method.server_streaming:
                    for out, returns in ((sync_methods, "Iterator"), (async_methods, "AsyncIterator")):
                        out.append(
                            f"    def {name}(\n"
                            f"        self,\n"
                            f"        request: {request} | None = None,\n"
                            f"        *,\n{args}"
                            f"        timeout: float | None = None,\n"
                            f"    ) -> {returns}[{response}]:\n"
                            f'{_docstring(f"{service.name}.{method.name} (a stream: iterate over its messages; no retries, resume from what you got): {doc}")}'
                            f"        return self._stream({constant}, _request(request, {request}, {build}), timeout)\n"
                        )
                    continue
                for out, awaiting in ((sync_methods, ""), (async_methods, "await ")):
                    prefix = "async def" if awaiting else "def"
                    out.append(
                        f"    {prefix} {name}(\n"
                        f"        self,\n"
                        f"        request: {request} | None = None,\n"
                        f"        *,\n{args}"
                        f"        timeout: float | None = None,\n"
                        f"    ) -> {response}:\n"
                        f'{_docstring(f"{service.name}.{method.name}: {doc}")}'
                        f"        return {awaiting}self._invoke({constant}, _request(request, {request}, {build}), timeout)\n"
                    )
                item = _page_item(types, method.input_type, method.output_type)
                if item is None:
                    continue
                paged = [f for f in fields if f.name not in ("page_token",)]
                pargs = "".join(f"        {f.name}: {types.annotation(f)} | None = None,\n" for f in paged)
                pbuild = ", ".join(f"{f.name}={f.name}" for f in paged)
                item_type = types.python[next(f for f in types.messages[method.output_type].field if f.name == item).type_name]
                for out, awaiting in ((sync_methods, ""), (async_methods, "await ")):
                    prefix, returns = ("async def", "AsyncIterator") if awaiting else ("def", "Iterator")
                    out.append(
                        f"    {prefix} iter_{name.removeprefix('list_')}(\n"
                        f"        self,\n        *,\n{pargs}"
                        f"        timeout: float | None = None,\n"
                        f"    ) -> {returns}[{item_type}]:\n"
                        f'{_docstring(f"Follows {service.name}.{method.name} page after page, yielding each of `{item}` (one call per page, each with `timeout`).")}'
                        f"        request = _request(None, {request}, {pbuild})\n"
                        f"        while True:\n"
                        f"            page = {awaiting}self._invoke({constant}, request, timeout)\n"
                        f"            for found in page.{item}:\n"
                        f"                yield found\n"
                        f"            if not page.next_page_token:\n"
                        f"                return\n"
                        f"            request.page_token = page.next_page_token\n"
                    )
    modules = sorted({name.split(".")[0] for name in types.python.values()})
    imports = f"from loyalty.v1 import {', '.join(modules)}\n"
    return _HEADER.replace("{imports}", imports) + "\n".join(constants) + "\n\n\n" + _SYNC + "\n".join(sync_methods) + "\n\n" + _ASYNC + "\n".join(async_methods)


def _docstring(text: str) -> str:
    wrapped = textwrap.fill(text.replace('"""', "'''"), width=88, initial_indent="", subsequent_indent="        ")
    return f'        """{wrapped}"""\n'


_HEADER = '''"""Generated by `python -m ledger.codegen` (ledger/sdk_codegen.py) from the proto files:
one method per RPC, blocking (LedgerMethods) and asyncio (AsyncLedgerMethods). Never
edited by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from loyalty.client.connection import Rpc
from loyalty.client.requests import build
{imports}
R = TypeVar("R", bound=Message)
M = TypeVar("M", bound=Message)


def _request(request: M | None, message_class: type[M], **fields: Any) -> M:
    """The request as given, or one built from the keyword arguments (not both)."""
    if request is None:
        return build(message_class, **fields)
    if any(value is not None for value in fields.values()):
        raise TypeError("pass either a request message or its fields as keyword arguments, not both")
    return request


'''
_SYNC = '''class LedgerMethods:
    """Every RPC as a blocking method; LedgerClient sends them."""

    def _invoke(self, rpc: Rpc[Any, R], request: Any, timeout: float | None) -> R:
        raise NotImplementedError

    def _stream(self, rpc: Rpc[Any, R], request: Any, timeout: float | None) -> Iterator[R]:
        raise NotImplementedError

'''
_ASYNC = '''class AsyncLedgerMethods:
    """Every RPC as a coroutine method; AsyncLedgerClient sends them."""

    async def _invoke(self, rpc: Rpc[Any, R], request: Any, timeout: float | None) -> R:
        raise NotImplementedError

    def _stream(self, rpc: Rpc[Any, R], request: Any, timeout: float | None) -> AsyncIterator[R]:
        raise NotImplementedError

'''
