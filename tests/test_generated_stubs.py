"""The committed `loyalty.v1` package is exactly what proto/ generates.

Fails when a .proto file changed (or was added or removed) without running
`python -m ledger.codegen`, or when a generated file was edited by hand.
"""

from __future__ import annotations

from pathlib import Path

from ledger import codegen

COMMITTED = codegen.CLIENT_ROOT


def generated_files(root: Path) -> set[Path]:
    stubs = {
        path.relative_to(root)
        for path in (root / codegen.PACKAGE).rglob("*")
        if path.is_file() and path.name.endswith(codegen.GENERATED) and "__pycache__" not in path.parts
    }
    return stubs | ({codegen.SDK_METHODS} if (root / codegen.SDK_METHODS).exists() else set())


def test_committed_stubs_equal_freshly_generated(tmp_path):
    written = codegen.generate(tmp_path)
    assert written, "codegen produced nothing: are there proto files under proto/loyalty/v1?"
    generated = generated_files(tmp_path)
    assert generated == generated_files(COMMITTED), "generated files differ from proto/: run `python -m ledger.codegen`"
    stale = [
        str(relative)
        for relative in sorted(generated)
        if (tmp_path / relative).read_text() != (COMMITTED / relative).read_text()
    ]
    assert not stale, f"generated files out of date with proto/ (run `python -m ledger.codegen`): {stale}"


def test_every_proto_file_has_its_messages_stubs_and_types():
    generated = generated_files(COMMITTED)
    for proto in codegen.proto_files():
        stem = codegen.PACKAGE / proto.stem
        for suffix in codegen.GENERATED:
            assert stem.with_name(stem.name + suffix) in generated, f"{proto.name} has no committed {suffix}"
