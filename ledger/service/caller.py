"""Who is calling: the authenticated key's program and role."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.kinds import Role


@dataclass(frozen=True)
class Caller:
    program_id: str
    key_id: str
    role: Role
