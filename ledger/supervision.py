"""`serve --processes N`: a parent that supervises N server processes, which die with it.

The parent serves nothing itself. It starts the N children (multiprocessing, spawn), passes
SIGTERM and SIGINT on to them, and watches them:

- A child that dies while the service runs (killed, crashed, exited) is started again in
  its place: at once the first time, then after 0.5, 1, 2, 4 and at most 8 seconds while
  that place keeps failing (a child that ran for STABLE_AFTER_S starts the count afresh).
- If children die MAX_DEATHS times within DEATH_WINDOW_S, the parent stops the
  others and exits 1, so the operator's supervisor (systemd, Kubernetes) restarts the whole
  service or raises the alarm, rather than it running on silently degraded.

A child dies with its parent however the parent ends, even by SIGKILL: on Linux the kernel
sends it SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG), and everywhere a thread in
the child watches the pipe multiprocessing keeps to the parent and sends the same SIGTERM
when that pipe closes. The child then shuts down as on any SIGTERM (in-flight calls get the
grace period), and is killed outright if it is still there 5 seconds after that.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

log = logging.getLogger("ledger.supervision")

RESTART_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
STABLE_AFTER_S = 30.0
MAX_DEATHS = 5
DEATH_WINDOW_S = 60.0
# After SIGTERM: how long past the grace period the parent waits for a child before SIGKILL.
STOP_MARGIN_S = 5.0
PR_SET_PDEATHSIG = 1


# -- in the child ---------------------------------------------------------------------------


def die_with_parent(grace_seconds: float) -> None:
    """Called first thing in a child: SIGTERM to itself when the parent dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        except (OSError, AttributeError):
            log.warning("cannot ask the kernel for a signal at the parent's death; the pipe watch remains", exc_info=True)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent.sentinel, grace_seconds), name="parent-watch", daemon=True
    )
    watcher.start()
    if os.getppid() != parent.pid:  # the parent died before prctl: its signal will never come
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_parent(sentinel, grace_seconds: float) -> None:
    wait([sentinel])  # readable (end of file) once the parent's end of the pipe is closed: it died
    log.warning("the parent process is gone; shutting down")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_seconds + STOP_MARGIN_S)
    log.error("still running after the grace period; exiting now")
    os._exit(1)


# -- in the parent --------------------------------------------------------------------------


class _Place:
    """One of the N server processes: its current child, and how it has been failing."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.failures = 0  # consecutive short lives
        self.restart_at: float | None = None


class Supervisor:
    def __init__(self, target, args, count: int, grace_seconds: float) -> None:
        """target(args, index) runs one server process (in the child)."""
        self._target = target
        self._args = args
        self._grace = grace_seconds
        self._context = multiprocessing.get_context("spawn")
        self._places = [_Place(index) for index in range(count)]
        self._deaths: deque[float] = deque()
        self._stopping: int | None = None  # the signal that stops the service

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for place in self._places:
            self._start(place)
        while self._stopping is None:
            self._reap(wait(self._sentinels(), timeout=0.5))
            if len(self._deaths) >= MAX_DEATHS:
                log.error(
                    "server processes keep dying; stopping the service",
                    extra={"deaths": len(self._deaths), "window_s": DEATH_WINDOW_S},
                )
                self._stop_children(signal.SIGTERM)
                self._wait_children(signal.SIGTERM)
                return 1
            now = time.monotonic()
            for place in self._places:
                if place.process is None and place.restart_at is not None and now >= place.restart_at:
                    self._start(place)
        self._stop_children(self._stopping)
        return self._wait_children(self._stopping)

    def _on_signal(self, signum, _frame) -> None:
        self._stopping = signum
        self._stop_children(signum)

    def _sentinels(self) -> list:
        return [place.process.sentinel for place in self._places if place.process is not None]

    def _start(self, place: _Place) -> None:
        process = self._context.Process(
            target=self._target, args=(self._args, place.index), name=f"server-{place.index}"
        )
        process.start()
        place.process, place.started_at, place.restart_at = process, time.monotonic(), None
        log.info("server process started", extra={"index": place.index, "child_pid": process.pid})

    def _reap(self, ready: list) -> None:
        now = time.monotonic()
        while self._deaths and now - self._deaths[0] > DEATH_WINDOW_S:
            self._deaths.popleft()
        for place in self._places:
            process = place.process
            if process is None or process.sentinel not in ready:
                continue
            process.join()
            place.process = None
            if self._stopping is not None:
                continue
            lived = now - place.started_at
            place.failures = 1 if lived >= STABLE_AFTER_S else place.failures + 1
            delay = RESTART_DELAYS_S[min(place.failures, len(RESTART_DELAYS_S)) - 1]
            place.restart_at = now + delay
            self._deaths.append(now)
            log.error(
                "server process died; starting another",
                extra={
                    "index": place.index,
                    "child_pid": process.pid,
                    "exit": _describe_exit(process.exitcode),
                    "lived_s": round(lived, 1),
                    "restart_in_s": delay,
                },
            )
            process.close()

    def _stop_children(self, signum: int) -> None:
        for place in self._places:
            process = place.process
            if process is not None and process.is_alive() and process.pid is not None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def _wait_children(self, signum: int) -> int:
        """Waits for the children told to stop by signum (killing those still there after the
        grace period); the service's exit code: 0 when every child stopped cleanly (or, still
        starting, by that signal's default action)."""
        deadline = time.monotonic() + self._grace + STOP_MARGIN_S
        code = 0
        for place in self._places:
            process = place.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("server process did not stop in time; killing it", extra={"child_pid": process.pid})
                process.kill()
                process.join()
            if process.exitcode not in (0, -signum):
                code = 1
        return code


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return signal.Signals(-exitcode).name
    return f"exit code {exitcode}"
