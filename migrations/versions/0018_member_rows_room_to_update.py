"""Member rows keep room on their page for their next version (PostgreSQL fillfactor 45).

Every ledger operation rewrites its member's row (balance, sequence, chain head). PostgreSQL
writes the new version on the same page, touching no index (a HOT update), only if the page
has room for it; otherwise the row moves and both of members' indexes get a new entry, one
of them (the referral code) at a random place. The expiry job rewrites every due member of a
batch in one transaction, so on a packed page it needs room for as many new versions as the
page holds rows: a page at most half full. At 45 % a member's row can also grow a little (a
closing time) and still fit. Measured over 1,000,000 due members (README, "Performance"):
every expiry's member update became HOT, the job took 37.3 and 35.4 s instead of 44.8 and
43.0 s, alternating, and wrote 4.16 GB of WAL instead of 5.5 GB. The cost is a members
table about twice as large (488 MB of rows per million members instead of 222 MB); it is
the one table that does not grow with the ledger's history.

The setting applies to pages PostgreSQL fills from now on. Existing pages keep their rows
until those move; rewriting the table here would lock it for as long as a big ledger takes
to copy, so that is left to the operator's maintenance window (`VACUUM FULL members`,
README). SQLite has no such setting: nothing to do there.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FILLFACTOR = 45


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE members SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE members RESET (fillfactor)")
