"""What the bench reads of other processes from /proc (Linux): a process tree, its resident
memory and CPU time, and the CPU time of the PostgreSQL processes on this machine."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int] | None:
    """pid and its descendants (a server with several processes); None if pid is gone."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        if not Path(f"/proc/{current}").exists():
            if current == pid:
                return None
            continue
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass  # it ended meanwhile
    return found


def rss_kb(pids: list[int]) -> int:
    """VmRSS of the processes, summed, in kB (a process that ended meanwhile counts 0)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of the processes (all their threads), summed."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / _TICKS


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine: the backends serving the server and the
    database's own workers (WAL writer, checkpointer, autovacuum), which an operation also costs."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
