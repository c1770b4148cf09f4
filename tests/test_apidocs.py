"""docs/ describes the contract and the code as they are.

docs/api.md and docs/errors.md are generated (`python -m ledger.apidocs`) from the protos'
comments, ledger/domain/roles.py and the reasons raised under ledger/; these tests fail when
a committed file is stale, when a proto element has no comment, when a reason is raised
without being documented (or documented without being raised), and when the hand-written
docs/migration-v1.md names a field the protos do not have.
"""

from __future__ import annotations

import re
from pathlib import Path
from google.protobuf.descriptor import FieldDescriptor

from ledger import apidocs, codegen
from ledger.apidocs import errors, protos
from ledger.domain import roles
from ledger.domain.errors import Category
from ledger.domain.kinds import Role
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2

DOCS = codegen.ROOT / "docs"
MODULES = (common_pb2, ledger_pb2, programs_pb2)


def test_generated_docs_are_current():
    generated = apidocs.documents()
    assert sorted(p.name for p in generated) == ["api.md", "errors.md"]
    stale = [path.name for path in apidocs.stale(generated)]
    assert stale == [], f"docs out of date with the protos or the code: run `python -m ledger.apidocs` ({stale})"


def test_every_service_rpc_message_field_and_enum_value_has_a_comment():
    reference = protos.render(list(codegen.descriptor_set().file))
    kinds = {element.kind for element in reference.elements}
    assert kinds == {"service", "rpc", "message", "field", "oneof", "enum", "enum value"}
    assert reference.undocumented == []


def test_every_reason_the_code_raises_is_documented_with_its_status():
    raised = errors.raised_reasons()
    assert len(raised) >= 40
    assert set(raised) == set(errors.WHEN)
    assert raised["INSUFFICIENT_POINTS"].category is Category.FAILED_PRECONDITION
    assert raised["IDEMPOTENCY_KEY_REUSED"].category is Category.ALREADY_EXISTS
    assert raised["INVALID_FIELD"].category is Category.INVALID_ARGUMENT
    text = (DOCS / "errors.md").read_text()
    for reason, entry in raised.items():
        assert f"`{reason}` | {entry.category.value} |" in text


def test_every_reason_the_tests_expect_is_documented():
    """An independent look: the reasons the integration tests see over gRPC are all in errors.md."""
    expected = set()
    for path in (codegen.ROOT / "tests").rglob("*.py"):
        expected |= set(re.findall(r"expect_error\([^,()]+(?:\([^()]*\))?,\s*\"([A-Z][A-Z_]+)\"", path.read_text()))
    assert len(expected) >= 25
    assert expected - set(errors.WHEN) == set()


def test_each_rpc_lists_exactly_the_roles_of_the_role_table():
    text = (DOCS / "api.md").read_text()
    for module in (ledger_pb2, programs_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                section = text.split(f'<a id="loyalty.v1.{service.name}.{method.name}"></a>', 1)[1]
                listed = re.search(r"^- Roles: (.*)$", section, re.M).group(1)
                allowed = [role.value for role in Role if roles.may_call(role, service.name, method.name)]
                assert listed == ", ".join(f"`{r}`" for r in allowed), f"{service.name}.{method.name}"


def _field(message_name: str, number: int) -> FieldDescriptor | None:
    for module in MODULES:
        message = module.DESCRIPTOR.message_types_by_name.get(message_name)
        if message is not None:
            return message.fields_by_number.get(number)
    return None


def test_the_migration_table_maps_every_renamed_field_to_its_number():
    text = (DOCS / "migration-v1.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| `(\w+)` \| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", text, re.M)
    assert len(rows) == 18
    for message, number, old, old_json, new, new_json in rows:
        field = _field(message, int(number))
        assert field is not None, (message, number)
        assert (field.name, field.json_name) == (new, new_json)
        assert old != new and old_json != new_json
        assert field.message_type.full_name == "google.protobuf.Timestamp"
        owner = field.containing_type
        assert old not in owner.fields_by_name, f"{message}.{old} still exists"



def test_the_readme_points_into_the_repository_not_at_design_md():
    readme = (codegen.ROOT / "README.md").read_text()
    assert "DESIGN.md" not in readme
    for target in re.findall(r"\]\(((?:docs|clients|bench)/[^)#]+)", readme):
        assert Path(codegen.ROOT / target).exists(), target
