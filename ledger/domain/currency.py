"""ISO-4217 currency codes, from the iso4217 package's table."""

from __future__ import annotations

from iso4217 import Currency

NOT_MONEY = frozenset({"XXX", "XTS"})


def is_known_currency(code: str) -> bool:
    if len(code) != 3 or not code.isalpha() or not code.isupper():
        return False
    try:
        currency = Currency(code)
    except ValueError:
        return False
    # Funds codes without minor units (XAU gold, XDR, XXX "no currency", XTS testing) are not money.
    return currency.exponent is not None and code not in NOT_MONEY
