"""The log writer writes each line to standard error as it is when the line is written.

A test that runs the command line in-process configures logging while pytest captures
sys.stderr, and the capture is closed when that test ends. A writer that kept the stream it
was configured with met a closed file for every later line ("--- Logging error ---"), and its
lines were lost; it follows sys.stderr instead.
"""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from ledger import logs


@pytest.fixture
def configured_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("info")
    yield
    if logs._listener is not None:
        logs._listener.stop()
        logs._listener = None
    root.handlers[:] = handlers
    root.setLevel(level)


def _drain() -> None:
    """Waits until every line logged so far is written (stopping the writer writes them)."""
    assert logs._listener is not None
    logs._listener.stop()
    logs._listener.start()


def _written(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_follow_standard_error_after_the_one_it_was_configured_with_is_closed(configured_logging, monkeypatch):
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("ledger.test").info("into the first")
    _drain()
    assert [line["msg"] for line in _written(first)] == ["into the first"]
    first.close()

    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("ledger.test").info("into the second")
    _drain()
    assert "Logging error" not in second.getvalue()
    assert [line["msg"] for line in _written(second)] == ["into the second"]
