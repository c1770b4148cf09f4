"""Who is calling: the authenticated key's program and role."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.kinds import Role


@dataclass(frozen=True)
class Caller:
    """revocation_checked: False when the key was known to this process and not read again;
    the call's own transaction then checks that it is not revoked (keys.require_live)."""

    program_id: str
    key_id: str
    role: Role
    revocation_checked: bool = True
