"""Each activity rule names the key roles that may record it; existing rules get POS, SUPPORT, ADMIN.

Until now any key that may call RecordActivity could record any activity, storefront keys
included, and a storefront key often sits somewhere less trusted (a web page, an app): 20
calls of an uncapped activity gave 200 redeemable points. An activity rule now carries
`roles`, the roles of the keys that may record it; a request that names none gets POS,
SUPPORT and ADMIN.

Activity rules live in JSON (programs.earning_settings and every version in
program_settings_history, which RecordActivity reads for a backdated activity), so no
column changes: this migration writes the default roles into every stored rule that has
none, so that each stored rule says who may record it and a later change of the default in
code cannot widen an existing rule. It bumps the config_version of every program it
touched, so no server keeps a cached copy without roles. (Servers still running the code
of 0008 during a rolling deploy write rules without roles; the code reads a rule without
roles as the default, so those are safe too.)

Downgrade removes the roles again, leaving the JSON as 0008 wrote it: a server of that
time knows no roles (and lets every role record every activity).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_ROLES = ["pos", "support", "admin"]

_programs = sa.table(
    "programs",
    sa.column("program_id", sa.String),
    sa.column("earning_settings", sa.Text),
    sa.column("config_version", sa.BigInteger),
)
_history = sa.table(
    "program_settings_history",
    sa.column("program_id", sa.String),
    sa.column("effective_at", sa.BigInteger),
    sa.column("settings", sa.Text),
)


def _rewritten(text: str | None, change) -> str | None:
    """The JSON with change applied to each activity rule, or None when nothing changed."""
    data = json.loads(text or "{}")
    changed = [change(rule) for rule in data.get("activity_rules") or []]
    return json.dumps(data, separators=(",", ":")) if any(changed) else None


def _add_roles(rule: dict) -> bool:
    if "roles" in rule:
        return False
    rule["roles"] = list(DEFAULT_ROLES)
    return True


def _drop_roles(rule: dict) -> bool:
    return rule.pop("roles", None) is not None


def _apply(change) -> None:
    bind = op.get_bind()
    touched = set()
    for row in bind.execute(sa.select(_programs.c.program_id, _programs.c.earning_settings)).all():
        new = _rewritten(row.earning_settings, change)
        if new is not None:
            bind.execute(
                _programs.update().where(_programs.c.program_id == row.program_id).values(earning_settings=new)
            )
            touched.add(row.program_id)
    history = bind.execute(
        sa.select(_history.c.program_id, _history.c.effective_at, _history.c.settings)
    ).all()
    for row in history:
        new = _rewritten(row.settings, change)
        if new is not None:
            bind.execute(
                _history.update()
                .where(_history.c.program_id == row.program_id, _history.c.effective_at == row.effective_at)
                .values(settings=new)
            )
            touched.add(row.program_id)
    for program_id in sorted(touched):
        bind.execute(
            _programs.update()
            .where(_programs.c.program_id == program_id)
            .values(config_version=_programs.c.config_version + 1)
        )


def upgrade() -> None:
    _apply(_add_roles)


def downgrade() -> None:
    _apply(_drop_roles)
