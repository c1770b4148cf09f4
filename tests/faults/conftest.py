"""Fault tests run last in any session that collects them.

They kill servers and restart the shared PostgreSQL server, which drops every pooled
connection of the session-scoped servers other test modules use. Moving these items
to the end keeps those tests unaffected, whatever order the directories are collected in;
the PostgreSQL restart goes last of all.
"""

from __future__ import annotations

from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent


def _is_fault_test(item) -> bool:
    return FAULTS_DIR in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(session, config, items):
    others = [item for item in items if not _is_fault_test(item)]
    faults = [item for item in items if _is_fault_test(item)]
    # The PostgreSQL restart disturbs the most: last of all.
    faults.sort(key=lambda item: Path(str(item.path)).name == "test_postgres_restart.py")
    items[:] = others + faults
