"""The layers hold: import-linter's contracts in pyproject.toml (api -> service -> store ->
domain and nothing back; a pure domain; no SQLAlchemy, driver or transport in the use
cases; nothing of the store in the transport)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
