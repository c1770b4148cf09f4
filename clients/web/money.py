"""Amounts in minor units shown as money, and money typed on a form read back to minor units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not a hundredth (the rest have two decimals).
_ZERO = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
_THREE = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}


def decimals(currency: str) -> int:
    return 0 if currency in _ZERO else 3 if currency in _THREE else 2


def show(minor: int, currency: str) -> str:
    """1250, "USD" -> "12.50 USD"."""
    places = decimals(currency)
    value = Decimal(minor).scaleb(-places)
    return f"{value:,.{places}f} {currency}".strip()


def parse(text: str, currency: str) -> int:
    """"12.5" -> 1250 for USD; ValueError with a sentence for what is not an amount."""
    cleaned = text.strip().replace(",", "").removesuffix(currency).strip()
    if not cleaned:
        return 0
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount (e.g. 25.00)") from None
    minor = value.scaleb(decimals(currency))
    if minor != minor.to_integral_value() or minor < 0:
        places = decimals(currency)
        raise ValueError(f"{text!r} is not an amount in {currency} (at most {places} decimals, not negative)")
    return int(minor)
