"""`python -m ledger.codegen`: regenerates the `loyalty.v1` package from proto/.

The generated messages and service stubs live in the client distribution
(clients/python/loyalty/v1), where protoc's own imports (`from loyalty.v1 import x_pb2`)
are already right: the package is named as the proto package is. The server imports the
same modules. Type stubs come from mypy-protobuf for messages and services (`.pyi` beside
`_pb2.py` and `_pb2_grpc.py`), and the SDK's methods from the same descriptors
(ledger.sdk_codegen). Needs the `test` extra (grpcio-tools, mypy-protobuf).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from ledger import sdk_codegen

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
CLIENT_ROOT = ROOT / "clients" / "python"
PACKAGE = Path("loyalty", "v1")
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
# The SDK's methods, one per RPC, written from the same descriptors (ledger.sdk_codegen).
SDK_METHODS = Path("loyalty", "client", "_methods.py")


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))


def _plugin(name: str) -> str:
    """The path of a protoc plugin installed beside this interpreter (mypy-protobuf's)."""
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: pip install -e '.[test]' (mypy-protobuf)")
    return found


def _protoc(*outputs: str) -> None:
    """Runs protoc over every proto file with these output options."""
    import grpc_tools  # build-time dependency only
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", *outputs, *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()]]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The proto files' descriptors with their source info (each element's comments), as the
    SDK's methods and docs/ (ledger.apidocs) are written from."""
    with tempfile.TemporaryDirectory() as raw:
        out = Path(raw) / "descriptors.pb"
        _protoc(f"--descriptor_set_out={out}", "--include_source_info")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def generate(out_root: Path) -> list[Path]:
    """Writes the generated files of every proto file under out_root/loyalty/v1; returns
    them relative to out_root."""
    with tempfile.TemporaryDirectory() as raw:
        _protoc(
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={raw}",
            f"--grpc_python_out={raw}",
            f"--mypy_out={raw}",
            f"--mypy_grpc_out={raw}",
            f"--descriptor_set_out={Path(raw) / 'descriptors.pb'}",
            "--include_source_info",
        )
        written = []
        for produced in sorted(Path(raw).rglob("*")):
            if produced.is_file() and produced.name.endswith(GENERATED):
                relative = produced.relative_to(raw)
                target = out_root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(produced.read_text())
                written.append(relative)
        files = descriptor_pb2.FileDescriptorSet.FromString((Path(raw) / "descriptors.pb").read_bytes())
        methods = out_root / SDK_METHODS
        methods.parent.mkdir(parents=True, exist_ok=True)
        methods.write_text(sdk_codegen.render(files))
        written.append(SDK_METHODS)
        return written


def main() -> int:
    written = generate(CLIENT_ROOT)
    print(f"generated {len(written)} files under {CLIENT_ROOT / PACKAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
