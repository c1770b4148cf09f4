"""`python -m ledger.apidocs`: writes docs/api.md and docs/errors.md from the contract and the code.

docs/api.md: every service, RPC (with the roles that may call it), message, field, oneof and
enum of proto/loyalty/v1, from the protos' comments (ledger/apidocs/protos.py).
docs/errors.md: every status and ErrorInfo reason the server answers, as raised in ledger/,
with when it happens (ledger/apidocs/errors.py).
`--check` writes nothing and exits 1 when a file is stale or an element has no comment.
Needs the `test` extra (grpcio-tools' protoc), like `python -m ledger.codegen`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ledger import codegen
from ledger.apidocs import errors, protos

DOCS = codegen.ROOT / "docs"


def documents() -> dict[Path, str]:
    """The generated files by path; raises when an element of the protos has no comment."""
    reference = protos.render(list(codegen.descriptor_set().file))
    if reference.undocumented:
        raise ValueError(f"proto elements without a comment: {reference.undocumented}")
    return {DOCS / "api.md": reference.markdown, DOCS / "errors.md": errors.render()}


def stale(generated: dict[Path, str]) -> list[Path]:
    return [path for path, text in generated.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    generated = documents()
    if args == ["--check"]:
        out_of_date = stale(generated)
        for path in out_of_date:
            print(f"{path.relative_to(codegen.ROOT)} is stale: run `python -m ledger.apidocs`", file=sys.stderr)
        return 1 if out_of_date else 0
    if args:
        print("usage: python -m ledger.apidocs [--check]", file=sys.stderr)
        return 2
    for path, text in generated.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(codegen.ROOT)}", file=sys.stderr)
    return 0
