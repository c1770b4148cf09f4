"""The member directory's rules: a member's profile (personal data), closing and erasure.

Personal fields (email, name, birth date, locale, marketing consent) live apart from the
ledger and are never written to logs, events or idempotency records, so EraseMember can
remove them for good while the pseudonymous ledger (member_id and its entries) stays and
still verifies. A closed member neither earns nor spends; closing applies the program's
ClosePolicy to the remaining points (FORFEIT writes them off in a FORFEIT transaction, KEEP
leaves them on the closed account). Erasure closes the member first, and is final.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import date, datetime

from ledger.domain import errors


class ClosePolicy(str, enum.Enum):
    KEEP = "KEEP"
    FORFEIT = "FORFEIT"


# The profile fields UpdateMember's update_mask may name.
PROFILE_FIELDS = ("email", "name", "birth_date", "locale", "marketing_consent")

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Profile:
    email: str = ""
    name: str = ""
    birth_date: str = ""  # YYYY-MM-DD, or ""
    locale: str = ""
    marketing_consent: bool = False
    # When marketing consent was last given or withdrawn; None before either.
    marketing_consent_at: datetime | None = None

    def changed(self, changes: dict, now: datetime) -> "Profile":
        """The profile with changes applied; a change of consent is stamped now."""
        updated = replace(self, **changes)
        if "marketing_consent" in changes and changes["marketing_consent"] != self.marketing_consent:
            updated = replace(updated, marketing_consent_at=now)
        return updated


ERASED = Profile()


def email_problem(value: str) -> str | None:
    if value and (len(value) > 254 or not _EMAIL.fullmatch(value)):
        return "must be an email address"
    return None


def birth_date_problem(value: str, today: date) -> str | None:
    if not value:
        return None
    try:
        born = date.fromisoformat(value)
    except ValueError:
        return "must be a date as YYYY-MM-DD"
    if len(value) != 10 or born > today or born.year < 1900:
        return "must be a date as YYYY-MM-DD between 1900-01-01 and today"
    return None


def locale_problem(value: str) -> str | None:
    if value and (len(value) > 35 or not _LOCALE.fullmatch(value)):
        return "must be a BCP 47 language tag such as fr-CA"
    return None


def name_problem(value: str) -> str | None:
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if value != value.strip() or any(not ch.isprintable() for ch in value):
        return "must be printable text without leading or trailing spaces"
    return None


def check_not_erased(member_id: str, erased: bool) -> None:
    if erased:
        raise errors.refused("MEMBER_ERASED", f"member {member_id!r} was erased; its profile cannot change")
