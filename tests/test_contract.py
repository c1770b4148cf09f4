"""Rules of the loyalty.v1 contract that buf lint does not check, read from the generated descriptors."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2

FILES = (common_pb2.DESCRIPTOR, ledger_pb2.DESCRIPTOR, programs_pb2.DESCRIPTOR)


def messages() -> list[Descriptor]:
    found: list[Descriptor] = []

    def walk(message: Descriptor) -> None:
        found.append(message)
        for nested in message.nested_types:
            walk(nested)

    for file in FILES:
        for message in file.message_types_by_name.values():
            walk(message)
    return found


def test_every_timestamp_field_ends_in_time():
    """AIP-142: a Timestamp field is named `<imperative verb>_time` (create_time, expire_time)."""
    timestamps = [
        f"{message.full_name}.{field.name}"
        for message in messages()
        for field in message.fields
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp"
    ]
    assert len(timestamps) >= 22
    assert [name for name in timestamps if not name.endswith("_time")] == []
