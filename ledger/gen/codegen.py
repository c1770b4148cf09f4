"""Regenerates the protobuf/gRPC stubs under ledger/gen from proto/.

protoc writes imports as `from loyalty.v1 import x_pb2`; we rewrite them to
`ledger.gen.loyalty.v1` so the stubs live inside the package instead of taking
a top-level `loyalty` name in site-packages.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
GEN_ROOT = Path(__file__).resolve().parent
_IMPORT = re.compile(r"^from loyalty\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "loyalty" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Writes the stubs for every proto file into out_dir; returns the files written."""
    from grpc_tools import protoc  # build-time dependency only

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        written = []
        for produced in sorted(Path(raw).rglob("*.py*")):
            relative = produced.relative_to(raw)
            target = out_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_IMPORT.sub("from ledger.gen.loyalty.v1 import ", produced.read_text()))
            written.append(relative)
        packages = {parent for p in written for parent in p.parents if parent != Path(".")}
        for package in packages:
            init = out_dir / package / "__init__.py"
            if not init.exists():
                init.write_text("")
        return written


def main() -> int:
    written = generate(GEN_ROOT)
    print(f"generated {len(written)} files under {GEN_ROOT}", file=sys.stderr)
    return 0
