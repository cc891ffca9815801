"""What makes an amount of money one a case may record.

The currency is an ISO 4217 code, the amount has no more decimals than the
currency's minor unit (JPY none, USD two, KWD three), it is not negative (a
fee of zero is fine) and, where an amount at risk or a transaction is meant,
above zero. No amount of 10^15 major units or more is a card's: anything
larger is a typing accident, refused before it reaches a queue's priority.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .currencies import MINOR_UNITS
from .errors import FieldRefused
from .values import Money

MAX_WHOLE_DIGITS = 15


class InvalidAmount(FieldRefused):
    """An amount the case cannot record (rule `invalid-amount`, 422 naming the field)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__("invalid-amount", field, detail)


def check_amount(field: str, money: Money, *, positive: bool = True) -> None:
    """Refuse `money` unless it is a real amount of a real currency (`field` names it in the refusal)."""
    units = MINOR_UNITS.get(money.currency)
    if units is None:
        raise InvalidAmount(f"{field}.currency", f"{money.currency} is not an ISO 4217 currency code")
    whole, _, fraction = money.amount.lstrip("-").partition(".")
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise InvalidAmount(f"{field}.amount", f"is more than {MAX_WHOLE_DIGITS} digits before the point")
    try:
        value = Decimal(money.amount)
    except InvalidOperation:
        raise InvalidAmount(f"{field}.amount", "is not a decimal amount") from None
    if len(fraction.rstrip("0")) > units:
        raise InvalidAmount(f"{field}.amount", f"{money.currency} has {units} decimal places, not {len(fraction)}")
    if value < 0 or (positive and value == 0):
        raise InvalidAmount(f"{field}.amount", "must be above zero" if positive else "must not be negative")
