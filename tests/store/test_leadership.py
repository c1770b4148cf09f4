"""The due-work leadership (ledger/store/leadership.py), in-process: one leader at a time,
a leader whose session breaks loses it, and another takes it at its next try.

Across real server processes and machines: tests/cli/test_due_work_leader.py.
"""

from __future__ import annotations

import logging

from ledger.store import leadership, locks
from ledger.store.engine import create_engine_for
from tests.databases import admin_connection, postgres_database


def test_one_postgres_leader_and_a_broken_session_loses_the_leadership(caplog):
    caplog.set_level(logging.INFO, logger="ledger.leadership")
    with postgres_database() as url:
        engine = create_engine_for(url, pool_size=1)
        changes: list[tuple[str, bool]] = []
        first = leadership.PostgresLeadership(engine, on_change=lambda v: changes.append(("first", v)))
        second = leadership.PostgresLeadership(engine, on_change=lambda v: changes.append(("second", v)))
        try:
            assert first.hold() is True
            assert second.hold() is False
            for _ in range(3):  # asked again each interval: kept, never stacked
                assert first.hold() is True and second.hold() is False

            # The leader's session ends under it (a database restart, a cut connection).
            conn = admin_connection()
            with conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (first._conn.get_backend_pid(),))
            conn.close()
            assert first.hold() is False, "a leader whose session ended must know it lost the lock"
            assert second.hold() is True
            assert first.hold() is False  # reconnected; stands by

            second.release()  # shutting down: the lock is free at once
            assert first.hold() is True
        finally:
            first.release()
            second.release()
            engine.dispose()
    assert changes == [
        ("first", True),
        ("second", False),
        ("first", False),
        ("second", True),
        ("second", False),
        ("first", True),
        ("first", False),
    ]
    messages = [record.getMessage() for record in caplog.records]
    assert "this process lost the due-work leadership" in messages
    assert "another process leads the due work; this one stands by" in messages


def test_one_file_leader_and_a_removed_lock_file_loses_the_leadership(tmp_path):
    path = locks.lock_file(create_engine_for(f"sqlite:///{tmp_path / 'ledger.db'}").url, "leader")
    assert path == (tmp_path / "ledger.db-leader.lock")
    first, second = leadership.FileLeadership(path), leadership.FileLeadership(path)
    try:
        assert first.hold() is True and second.hold() is False
        assert path.read_text().strip() == leadership.process_name()
        first.release()
        assert second.hold() is True and first.hold() is False
        path.unlink()  # an operator cleaning up: whoever locks a new file must not meet a second leader
        assert second.hold() is False
        assert first.hold() is True and second.hold() is False
    finally:
        first.release()
        second.release()


def test_the_leadership_of_each_kind_of_database(tmp_path):
    assert isinstance(leadership.for_engine(create_engine_for("sqlite://")), leadership.SoleLeadership)
    on_file = leadership.for_engine(create_engine_for(f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert isinstance(on_file, leadership.FileLeadership)
    assert leadership.SoleLeadership().hold() is True
    with postgres_database() as url:
        engine = create_engine_for(url, pool_size=1)
        assert isinstance(leadership.for_engine(engine), leadership.PostgresLeadership)
        engine.dispose()
