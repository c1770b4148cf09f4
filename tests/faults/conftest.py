"""Fault tests run last in any session that collects them.

They kill servers under load and keep both cores busy, so they run after the quick tests,
whatever order the directories are collected in. None of them stops the shared PostgreSQL
server: the restart test stops a private cluster of its own (tests/private_postgres.py).
"""

from __future__ import annotations

from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent


def _is_fault_test(item) -> bool:
    return FAULTS_DIR in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(session, config, items):
    others = [item for item in items if not _is_fault_test(item)]
    faults = [item for item in items if _is_fault_test(item)]
    items[:] = others + faults
