"""The loyalty.v1 descriptors with their comments, read by protoc from proto/, and docs/api.md.

protoc (grpc_tools, the `test` extra) compiles proto/loyalty/v1/*.proto into a
FileDescriptorSet with SourceCodeInfo (codegen.descriptor_set, --include_source_info), whose
locations carry each element's leading comment; the reference is rendered from those comments and from the
role table of ledger/domain/roles.py, so neither can drift from the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from ledger.domain import roles
from ledger.domain.kinds import Role

PACKAGE = "loyalty.v1"

# SourceCodeInfo path numbers: the field numbers of these elements in descriptor.proto.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2

_SCALARS = {
    F.TYPE_DOUBLE: "double",
    F.TYPE_FLOAT: "float",
    F.TYPE_INT64: "int64",
    F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32",
    F.TYPE_FIXED64: "fixed64",
    F.TYPE_FIXED32: "fixed32",
    F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string",
    F.TYPE_BYTES: "bytes",
    F.TYPE_UINT32: "uint32",
    F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64",
    F.TYPE_SINT32: "sint32",
    F.TYPE_SINT64: "sint64",
}
# proto3 JSON writes 64-bit integers as strings.
_JSON_STRING_INTEGERS = {F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_FIXED64, F.TYPE_SFIXED64, F.TYPE_SINT64}
_WELL_KNOWN = {
    ".google.protobuf.Timestamp": "an RFC 3339 string",
    ".google.protobuf.FieldMask": "a string of comma-separated lowerCamel paths",
}


def _comment(text: str) -> str:
    """A proto comment as one Markdown paragraph per blank-line-separated block."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


@dataclass
class Element:
    """One documented element: its full name (loyalty.v1.Order.occur_time), kind and comment."""

    name: str
    kind: str
    comment: str


class Comments:
    """Leading comments of a file's elements by SourceCodeInfo path."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path = {
            tuple(location.path): _comment(location.leading_comments)
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }

    def at(self, *path: int) -> str:
        return self._by_path.get(path, "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n\n", "<br><br>") or " "


def _anchor(full_name: str) -> str:
    return f'<a id="{full_name}"></a>'


def _link(type_name: str) -> str:
    """A field's message or enum type, linked when it is one of ours."""
    name = type_name.lstrip(".")
    if name.startswith(PACKAGE + "."):
        return f"[{name.removeprefix(PACKAGE + '.')}](#{name})"
    return f"`{name}`"


def _field_type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
        shown = _link(field.type_name)
    else:
        shown = f"`{_SCALARS[field.type]}`"
    return f"repeated {shown}" if field.label == F.LABEL_REPEATED else shown


def _json_note(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in _JSON_STRING_INTEGERS:
        return " (a string in JSON)"
    if field.type == F.TYPE_ENUM:
        return " (the value's name in JSON)"
    return f" ({_WELL_KNOWN[field.type_name]} in JSON)" if field.type_name in _WELL_KNOWN else ""


@dataclass
class Reference:
    """What docs/api.md is made of, and every element found without a comment."""

    markdown: str
    elements: list[Element]

    @property
    def undocumented(self) -> list[str]:
        return [f"{e.kind} {e.name}" for e in self.elements if not e.comment]


ROLE_NOTES = {
    Role.STOREFRONT: "RecordActivity only for activities whose rule lists `API_KEY_ROLE_STOREFRONT`",
}


def _roles_of(service: str, method: str) -> list[Role]:
    return [role for role in Role if roles.may_call(role, service, method)]


def _rpc_names(files: list[descriptor_pb2.FileDescriptorProto]) -> list[tuple[str, str]]:
    return [(service.name, method.name) for file in files for service in file.service for method in service.method]


def _roles_section(files: list[descriptor_pb2.FileDescriptorProto]) -> list[str]:
    rpcs = _rpc_names(files)
    lines = [
        "## Roles",
        "",
        "Every call carries `authorization: Bearer <api key>`. A key belongs to one program and has",
        "one role (`loyalty-ledger key create --program ID --role ROLE`); a call its role may not make",
        "is PERMISSION_DENIED / `ROLE_NOT_ALLOWED`. From `ledger/domain/roles.py`:",
        "",
        "| role | may call |",
        "| --- | --- |",
    ]
    for role in Role:
        allowed = [f"{service}.{method}" for service, method in rpcs if roles.may_call(role, service, method)]
        shown = "every RPC of its program" if len(allowed) == len(rpcs) else ", ".join(allowed)
        note = f" ({ROLE_NOTES[role]})" if role in ROLE_NOTES else ""
        lines.append(f"| `{role.value}` | {shown}{note} |")
    lines += [
        "",
        "RecordActivity is further limited by the activity's rule: `ActivityRule.allowed_roles`",
        "names the roles whose keys may record it (by default `pos`, `support` and `admin`); another",
        "key is PERMISSION_DENIED / `ACTIVITY_ROLE_NOT_ALLOWED`.",
        "",
    ]
    return lines


INTRO = """\
# loyalty.v1 API reference

<!-- Generated by `python -m ledger.apidocs` from the comments of proto/loyalty/v1/*.proto and
the role table of ledger/domain/roles.py. Do not edit: tests/test_apidocs.py fails when it is stale. -->

The gRPC contract of the loyalty ledger, package `loyalty.v1`: the services `Ledger` (tills,
storefronts, marketplaces, support) and `Programs` (marketing and admins). Refusals are listed
in [errors.md](errors.md); fields renamed for v1 in [migration-v1.md](migration-v1.md).

## Conventions

- **Transport.** gRPC (HTTP/2), plaintext or TLS. Server reflection and `grpc.health.v1.Health`
  are always on, so `grpcurl` and `buf curl` need no proto files.
- **Keys.** Every call carries metadata `authorization: Bearer <api key>`; see [Roles](#roles).
- **Exactly once.** Every Ledger call that writes takes a required `idempotency_key`, unique in
  the program: a retry with the same key and the same request answers the original result (a
  business refusal included), even after a restart; the same key with a different request is
  ALREADY_EXISTS / `IDEMPOTENCY_KEY_REUSED`. `Programs.CreateCampaign`, `CreateReward` and
  `SetTiers` take an optional `request_id` (AIP-155) that works the same way, in the same key
  space; without one, every call creates (or replaces). `EnrollMember` is idempotent on
  `member_id`. Refusals before any business logic (INVALID_ARGUMENT, UNAUTHENTICATED,
  PERMISSION_DENIED, UNAVAILABLE, RESOURCE_EXHAUSTED) record nothing: retry with the same key.
- **JSON** (proto3 JSON mapping, e.g. with `buf curl`): field names in lowerCamelCase
  (`occur_time` is `occurTime`), 64-bit integers as strings (`"amount": "2599"`), enums by
  name (`"CHANNEL_POS"`), Timestamps as RFC 3339 strings (`"2026-11-21T10:00:00Z"`).
- **Money and points** are integers: amounts in minor units of an ISO-4217 currency, rates and
  multipliers in basis points (10000 = 1x). Times are `google.protobuf.Timestamp`, named
  `<verb>_time` (AIP-142).
- **Oneofs.** `RedeemRequest.debit` (points or reward_id) and `Campaign.effect` (multiplier_bps
  or bonus_points): exactly one member must be set; the one set is validated even when it is
  0 or empty.
- **Lists** take `page_size` (0 means 50, at most 500) and `page_token`, and answer
  `next_page_token` (empty on the last page). A token is opaque and signed, good only for the
  same list, program and filters.

"""


def render(files: list[descriptor_pb2.FileDescriptorProto]) -> Reference:
    elements: list[Element] = []
    services: list[str] = []
    messages: list[str] = []
    enums: list[str] = []

    def note(name: str, kind: str, comment: str) -> str:
        elements.append(Element(name, kind, comment))
        return comment

    def enum_block(full: str, enum: descriptor_pb2.EnumDescriptorProto, comments: Comments, path: tuple[int, ...]) -> None:
        enums.extend([f"### {_anchor(full)}{full.removeprefix(PACKAGE + '.')}", "", note(full, "enum", comments.at(*path)), ""])
        enums.extend(["| value | number | description |", "| --- | --- | --- |"])
        for i, value in enumerate(enum.value):
            text = note(f"{full}.{value.name}", "enum value", comments.at(*path, _ENUM_VALUE, i))
            enums.append(f"| `{value.name}` | {value.number} | {_cell(text)} |")
        enums.append("")

    def message_block(full: str, message: descriptor_pb2.DescriptorProto, comments: Comments, path: tuple[int, ...]) -> None:
        messages.extend([f"### {_anchor(full)}{full.removeprefix(PACKAGE + '.')}", "", note(full, "message", comments.at(*path)), ""])
        real_oneofs = {
            i: oneof.name
            for i, oneof in enumerate(message.oneof_decl)
            if not all(f.proto3_optional for f in message.field if f.HasField("oneof_index") and f.oneof_index == i)
        }
        if message.field:
            messages.extend(["| field | type | JSON name | number | description |", "| --- | --- | --- | --- | --- |"])
        for i, field in enumerate(message.field):
            text = note(f"{full}.{field.name}", "field", comments.at(*path, _MESSAGE_FIELD, i))
            if field.HasField("oneof_index") and field.oneof_index in real_oneofs:
                text = f"One of `{real_oneofs[field.oneof_index]}`. {text}"
            messages.append(
                f"| `{field.name}` | {_field_type(field)}{_json_note(field)} | `{field.json_name}` | {field.number} | {_cell(text)} |"
            )
        if message.field:
            messages.append("")
        for i, name in real_oneofs.items():
            members = ", ".join(f"`{f.name}`" for f in message.field if f.HasField("oneof_index") and f.oneof_index == i)
            text = note(f"{full}.{name}", "oneof", comments.at(*path, _MESSAGE_ONEOF, i))
            messages.extend([f"Oneof `{name}` ({members}): {text}", ""])
        for i, nested in enumerate(message.nested_type):
            message_block(f"{full}.{nested.name}", nested, comments, (*path, _MESSAGE_NESTED, i))
        for i, enum in enumerate(message.enum_type):
            enum_block(f"{full}.{enum.name}", enum, comments, (*path, _MESSAGE_ENUM, i))

    for file in files:
        comments = Comments(file)
        for s, service in enumerate(file.service):
            full = f"{PACKAGE}.{service.name}"
            services.extend([f"## {_anchor(full)}Service `{full}`", "", note(full, "service", comments.at(_FILE_SERVICE, s)), ""])
            for m, method in enumerate(service.method):
                text = note(f"{full}.{method.name}", "rpc", comments.at(_FILE_SERVICE, s, _SERVICE_METHOD, m))
                allowed = ", ".join(f"`{role.value}`" for role in _roles_of(service.name, method.name))
                services.extend(
                    [
                        f"### {_anchor(f'{full}.{method.name}')}{service.name}.{method.name}",
                        "",
                        text,
                        "",
                        f"- Request: {_link(method.input_type)}; response: {_link(method.output_type)}",
                        f"- Roles: {allowed}",
                        "",
                    ]
                )
        for i, message in enumerate(file.message_type):
            message_block(f"{PACKAGE}.{message.name}", message, comments, (_FILE_MESSAGE, i))
        for i, enum in enumerate(file.enum_type):
            enum_block(f"{PACKAGE}.{enum.name}", enum, comments, (_FILE_ENUM, i))

    contents = ["## Contents", "", "- [Conventions](#conventions)", "- [Roles](#roles)"]
    contents += [
        f"- [Service `{PACKAGE}.{s.name}`](#{PACKAGE}.{s.name}): "
        + ", ".join(f"[{m.name}](#{PACKAGE}.{s.name}.{m.name})" for m in s.method)
        for file in files
        for s in file.service
    ]
    contents += ["- [Messages](#messages)", "- [Enums](#enums)", ""]
    parts = [INTRO.rstrip("\n"), "", *contents, *_roles_section(files), *services, "## Messages", "", *messages, "## Enums", "", *enums]
    return Reference("\n".join(parts).rstrip("\n") + "\n", elements)
