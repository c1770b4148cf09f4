"""Builds a request message from keyword arguments, the way the client's methods take them:
None leaves a field unset, a datetime fills a Timestamp, a list of paths a FieldMask, and an
enum takes its number, its full name ("CHANNEL_POS") or its short name ("POS")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

if TYPE_CHECKING:  # the C (upb) runtime's descriptors, which the stubs type apart
    from google._upb import _message as upb

M = TypeVar("M", bound=Message)
AnyFieldDescriptor: TypeAlias = "FieldDescriptor | upb.FieldDescriptor"
AnyEnumDescriptor: TypeAlias = "EnumDescriptor | upb.EnumDescriptor"


def build(message_class: type[M], **fields: Any) -> M:
    """message_class with the given fields set (None ones left unset)."""
    descriptor = message_class.DESCRIPTOR
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        field = descriptor.fields_by_name[name]
        values[name] = _convert(field, value)
    return message_class(**values)


def _convert(field: AnyFieldDescriptor, value: Any) -> Any:
    if field.is_repeated and not isinstance(value, (str, bytes, Mapping)):
        return [_one(field, item) for item in value]
    return _one(field, value)


def _one(field: AnyFieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        return enum_value(field.enum_type, value)
    message = field.message_type
    if message is not None:
        if message.full_name == "google.protobuf.Timestamp" and isinstance(value, datetime):
            return timestamp(value)
        if message.full_name == "google.protobuf.FieldMask" and not isinstance(value, field_mask_pb2.FieldMask):
            return field_mask_pb2.FieldMask(paths=list(value))
    return value


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime. A naive one is refused (ValueError) rather than
    guessed at: the ledger applies the rules in force at an order's time, so a till's local
    wall clock taken for UTC would earn under the wrong rules, hours off."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()}: the ledger needs a timezone-aware one, "
            "e.g. datetime.now(timezone.utc) or datetime(..., tzinfo=ZoneInfo('Europe/Paris'))"
        )
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def enum_value(enum: AnyEnumDescriptor, value: int | str) -> int:
    """The number of an enum value given as a number, a full name or a short name."""
    if isinstance(value, int):
        return value
    if value in enum.values_by_name:
        return enum.values_by_name[value].number
    prefix = _prefix(enum)
    if prefix + value.upper() in enum.values_by_name:
        return enum.values_by_name[prefix + value.upper()].number
    raise ValueError(f"{value!r} is not a {enum.name}: one of {', '.join(enum.values_by_name)}")


def _prefix(enum: AnyEnumDescriptor) -> str:
    """The values' common prefix by the style guide (CHANNEL_ for Channel, STATE_ for State)."""
    first = next(iter(enum.values_by_name))
    return first.rsplit("UNSPECIFIED", 1)[0] if first.endswith("UNSPECIFIED") else ""
