"""The context of the call a unit of work runs for, shared by the transport that sets it and
the store that reads it: whether the caller still waits for the answer (work for a caller
who left is rolled back, not committed, and not retried), and what to cancel when it leaves
(the statement the call's work is waiting on)."""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Callable

log = logging.getLogger("ledger.call_context")

# Set by the transport for the current call: False once the caller is gone (deadline,
# cancel). Work for an abandoned call is not retried, so nothing is committed for it.
caller_waiting: contextvars.ContextVar[Callable[[], bool]] = contextvars.ContextVar(
    "caller_waiting", default=lambda: True
)


class CallScope:
    """Lets the transport cancel the statement a call is waiting on when the caller goes away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection = None
        self.abandoned = False

    def attach(self, dbapi_connection) -> None:
        with self._lock:
            self._connection = dbapi_connection

    def detach(self) -> None:
        with self._lock:
            self._connection = None

    def caller_waiting(self) -> bool:
        """False once the caller is gone (the transport marked the call abandoned)."""
        return not self.abandoned

    @property
    def attached(self) -> bool:
        """Whether the call's work holds a connection now (a statement may be running)."""
        return self._connection is not None

    def cancel(self) -> None:
        """Called when the call ends; cancels only a statement still running for it."""
        with self._lock:
            self.abandoned = True
            connection = self._connection
            if connection is None:
                return
            try:
                if hasattr(connection, "cancel"):
                    connection.cancel()  # psycopg2: asks the server to cancel the running statement
                elif hasattr(connection, "interrupt"):
                    connection.interrupt()  # sqlite3
            except Exception:  # best effort: the statement may have just finished
                log.debug("cancel of an abandoned call's statement failed", exc_info=True)


current_scope: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("current_scope", default=None)
