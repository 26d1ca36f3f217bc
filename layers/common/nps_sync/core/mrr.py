"""Monthly recurring revenue: every recurring price normalized to one month, in minor units.

Arithmetic stays exact until one half-even rounding at the end, so that summing lines and
applying discounts accumulates no rounding error: ``total`` keeps a numerator and a denominator
as plain integers (Fraction reduces by a gcd after every operation, ~1 µs each, 11 µs for one
line's MRR; this is a webhook's warm path). Amounts in different currencies
are never added: a line or discount in another currency is refused or skipped, never summed.

A line without a unit amount (metered usage, tiered prices) has no knowable monthly value from
the webhook alone: it counts as 0 and ``total`` says so in ``Mrr.notes`` (ids only, no personal
data), so the adapter can log it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.models import Money

# How many of one interval fit in a month: a year is 12 months, 52 weeks, 365 days.
PER_MONTH = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}
_PER_MONTH = {name: factor.as_integer_ratio() for name, factor in PER_MONTH.items()}

Amount = int | Decimal | Fraction


@dataclass(frozen=True)
class Line:
    """One priced line: ``unit_amount`` is charged every ``interval_count`` ``interval``s."""

    unit_amount: Amount | None  # None: metered or tiered, counted as 0 and noted
    currency: str
    interval: str
    interval_count: int = 1
    quantity: int = 1
    label: str = ""  # a price/plan id for notes, never personal data


@dataclass(frozen=True)
class Discount:
    """A coupon on the whole subscription; ``amount_off`` is per billing period, like an invoice."""

    percent_off: Amount | None = None
    amount_off: int | None = None
    currency: str | None = None  # of amount_off
    end: datetime | None = None  # when a repeating coupon stops applying; None: no known end
    label: str = ""


@dataclass(frozen=True)
class Mrr:
    money: Money
    notes: tuple[str, ...] = ()


def monthly(amount: Amount, interval: str, interval_count: int = 1) -> Fraction:
    """``amount`` charged every ``interval_count`` ``interval``s, as an exact monthly amount."""
    return Fraction(*_monthly(_ratio(amount), interval, interval_count))


def _ratio(amount: Amount) -> tuple[int, int]:
    """An amount as numerator and denominator (a Decimal's exactly: ``as_integer_ratio``)."""
    return (amount, 1) if type(amount) is int else amount.as_integer_ratio()


def _monthly(amount: tuple[int, int], interval: str, interval_count: int) -> tuple[int, int]:
    factor = _PER_MONTH.get(interval)
    if factor is None:
        raise InvalidPayload("a billing interval must be day, week, month or year")
    if interval_count < 1:
        raise InvalidPayload("a billing interval count must be at least 1")
    return amount[0] * factor[0], amount[1] * factor[1] * interval_count


def to_money(amount: Fraction | int, currency: str) -> Money:
    """Round half-even to whole minor units (Fraction's round() is half-even)."""
    return Money(amount=round(Fraction(amount)), currency=currency.upper())


def add(*amounts: Money) -> Money:
    """Sum amounts of one currency; different currencies are an error, never a sum."""
    currencies = {money.currency for money in amounts}
    if len(currencies) != 1:
        raise InvalidPayload("cannot add amounts of different (or no) currencies")
    return Money(amount=sum(money.amount for money in amounts), currency=currencies.pop())


def applies(discount: Discount, at: datetime | None) -> bool:
    """A coupon reduces MRR while it applies: forever/once have no end, repeating ends."""
    return discount.end is None or at is None or discount.end > at


def total(
    lines: Iterable[Line],
    currency: str,
    discounts: Iterable[Discount] = (),
    at: datetime | None = None,
) -> Mrr:
    """MRR of a subscription's lines (all in ``currency``) after its currently-applying discounts.

    Percentages and fixed amounts apply in the order given, as Stripe stacks them; a fixed
    amount is per billing period of the first line, so it is normalized like that line.
    """
    currency = currency.upper()
    lines = list(lines)
    notes: list[str] = []
    top, bottom = 0, 1  # the amount, top / bottom, never reduced: exact, and cheap
    for line in lines:
        if line.currency.upper() != currency:
            raise InvalidPayload("a subscription's lines are in more than one currency")
        if line.quantity < 0:
            raise InvalidPayload("a quantity cannot be negative")
        if line.unit_amount is None:
            notes.append(f"{line.label or 'a line'}: no unit amount (metered or tiered), 0")
            continue
        unit, per = _ratio(line.unit_amount)
        n, d = _monthly((unit * line.quantity, per), line.interval, line.interval_count)
        top, bottom = top * d + n * bottom, bottom * d
    period = (lines[0].interval, lines[0].interval_count) if lines else ("month", 1)
    for discount in discounts:
        if not applies(discount, at):
            continue
        if discount.percent_off is not None:
            n, d = _ratio(discount.percent_off)  # amount x (1 - n / (100 d))
            top, bottom = top * (100 * d - n), bottom * 100 * d
        if discount.amount_off is not None:
            if (discount.currency or currency).upper() != currency:
                notes.append(f"{discount.label or 'a discount'}: other currency, not applied")
                continue
            n, d = _monthly((discount.amount_off, 1), *period)
            top, bottom = top * d - n * bottom, bottom * d
    return Mrr(to_money(Fraction(max(top, 0), bottom), currency), tuple(notes))
