"""loyalty.v1.Programs: program settings now; tiers, campaigns and rewards arrive with the earning engine."""

from __future__ import annotations

from sqlalchemy import Engine

from ledger.api import enums, responses
from ledger.api.call_guard import current_caller
from ledger.api.fields import Fields
from ledger.domain.limits import MAX_ID_LENGTH
from ledger.domain.holds import MAX_HOLD_TTL_SECONDS
from ledger.domain.program import EarnRate
from ledger.gen.loyalty.v1 import programs_pb2, programs_pb2_grpc
from ledger.service import programs

# Program fields UpdateProgram may change, and how each is validated.
UPDATABLE = (
    "name",
    "currency",
    "earn_rate",
    "rounding_mode",
    "negative_balance_policy",
    "max_backdate_days",
    "pending_days",
    "expiry_mode",
    "expiry_days",
    "hold_ttl_seconds",
)


def program_changes(request: programs_pb2.UpdateProgramRequest) -> dict:
    fields = Fields()
    paths = list(request.update_mask.paths)
    if not paths:
        fields.bad("update_mask", "name at least one field to change")
    changes: dict = {}
    incoming = request.program
    for path in paths:
        if path not in UPDATABLE:
            fields.bad("update_mask", f"{path!r} cannot be changed here (changeable: {', '.join(UPDATABLE)})")
        elif path == "name":
            changes["name"] = fields.identifier("program.name", incoming.name, max_length=MAX_ID_LENGTH)
        elif path == "currency":
            changes["currency"] = fields.currency("program.currency", incoming.currency)
        elif path == "earn_rate":
            rate = incoming.earn_rate
            if not 0 <= rate.points <= 1_000_000:
                fields.bad("program.earn_rate.points", "must be between 0 and 1000000")
            if not 0 < rate.per_amount <= 1_000_000_000:
                fields.bad("program.earn_rate.per_amount", "must be between 1 and 1000000000")
            changes["earn_rate"] = EarnRate(rate.points, rate.per_amount)
        elif path == "rounding_mode":
            changes["rounding"] = fields.enum("program.rounding_mode", incoming.rounding_mode, enums.ROUNDINGS, required=True)
        elif path == "negative_balance_policy":
            changes["negative_balance_policy"] = fields.enum(
                "program.negative_balance_policy",
                incoming.negative_balance_policy,
                enums.NEGATIVE_POLICIES,
                required=True,
            )
        elif path == "max_backdate_days":
            if not 0 <= incoming.max_backdate_days <= 3650:
                fields.bad("program.max_backdate_days", "must be between 0 and 3650")
            changes["max_backdate_days"] = incoming.max_backdate_days
        elif path == "pending_days":
            if not 0 <= incoming.pending_days <= 365:
                fields.bad("program.pending_days", "must be between 0 and 365")
            changes["pending_days"] = incoming.pending_days
        elif path == "expiry_mode":
            changes["expiry_mode"] = fields.enum("program.expiry_mode", incoming.expiry_mode, enums.EXPIRY_MODES, required=True)
        elif path == "expiry_days":
            if not 0 <= incoming.expiry_days <= 3650:
                fields.bad("program.expiry_days", "must be between 0 and 3650")
            changes["expiry_days"] = incoming.expiry_days
        elif path == "hold_ttl_seconds":
            if not 1 <= incoming.hold_ttl_seconds <= MAX_HOLD_TTL_SECONDS:
                fields.bad("program.hold_ttl_seconds", f"must be between 1 and {MAX_HOLD_TTL_SECONDS}")
            changes["hold_ttl_seconds"] = incoming.hold_ttl_seconds
    fields.done()
    return changes


class ProgramsServicer(programs_pb2_grpc.ProgramsServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def GetProgram(self, request, context):
        settings = programs.get_program(self._engine, current_caller())
        return programs_pb2.GetProgramResponse(program=responses.program(settings))

    def UpdateProgram(self, request, context):
        settings = programs.update_program(self._engine, current_caller(), program_changes(request))
        return programs_pb2.UpdateProgramResponse(program=responses.program(settings))
