"""ISO-4217 currency codes, from the iso4217 package's table."""

from __future__ import annotations

from iso4217 import Currency


def is_known_currency(code: str) -> bool:
    if len(code) != 3 or not code.isalpha() or not code.isupper():
        return False
    try:
        Currency(code)
    except ValueError:
        return False
    return True
