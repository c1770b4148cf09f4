"""The committed stubs under ledger/gen are exactly what proto/ generates.

Fails when a .proto file changed (or was added or removed) without running
`python -m ledger.gen`, or when a stub was edited by hand.
"""

from __future__ import annotations

from pathlib import Path

from ledger.gen import codegen

COMMITTED = codegen.GEN_ROOT


def stub_files(root: Path) -> set[Path]:
    return {
        path.relative_to(root)
        for path in (root / "loyalty").rglob("*")
        if path.is_file() and path.suffix in (".py", ".pyi") and "__pycache__" not in path.parts
    }


def test_committed_stubs_equal_freshly_generated(tmp_path):
    written = codegen.generate(tmp_path)
    assert written, "codegen produced nothing: are there proto files under proto/loyalty/v1?"
    generated = stub_files(tmp_path)
    assert generated == stub_files(COMMITTED), "stub files differ from proto/: run `python -m ledger.gen`"
    stale = [
        str(relative)
        for relative in sorted(generated)
        if (tmp_path / relative).read_text() != (COMMITTED / relative).read_text()
    ]
    assert not stale, f"stubs out of date with proto/ (run `python -m ledger.gen`): {stale}"


def test_every_proto_file_has_its_stubs():
    generated = stub_files(COMMITTED)
    for proto in codegen.proto_files():
        stem = Path("loyalty", "v1", proto.stem)
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert stem.with_name(stem.name + suffix) in generated, f"{proto.name} has no committed {suffix}"
