"""MRR normalization: intervals, quantity, discounts, metered prices, currencies."""

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nps_sync.core import mrr
from nps_sync.core.errors import InvalidPayload
from nps_sync.core.models import Money

AT = datetime(2026, 3, 2, tzinfo=UTC)


def line(amount, interval="month", count=1, quantity=1, currency="eur"):
    return mrr.Line(amount, currency, interval, count, quantity, label="price_x")


@pytest.mark.parametrize(
    ("amount", "interval", "count", "expected"),
    [
        (118_800, "year", 1, 9_900),
        (27_000, "month", 3, 9_000),  # quarterly
        (1_000, "week", 1, 4_333),  # 1000 * 52 / 12 = 4333.33
        (2_000, "week", 2, 4_333),  # fortnightly
        (100, "day", 1, 3_042),  # 100 * 365 / 12 = 3041.67
        (4_900, "month", 1, 4_900),
    ],
)
def test_each_interval_is_normalized_to_one_month(amount, interval, count, expected):
    result = mrr.total([line(amount, interval, count)], "eur")

    assert result.money == Money(amount=expected, currency="EUR")
    assert result.notes == ()


def test_monthly_is_exact_until_the_single_half_even_rounding():
    assert mrr.monthly(1_000, "week") == Fraction(13_000, 3)
    assert mrr.to_money(Fraction(1, 2), "usd").amount == 0
    assert mrr.to_money(Fraction(3, 2), "usd").amount == 2
    assert mrr.to_money(Fraction(5, 2), "usd").amount == 2
    # three weekly lines rounded once, not three times
    assert mrr.total([line(1_000, "week")] * 3, "eur").money.amount == 13_000


def test_per_seat_quantity_multiplies_the_unit_amount():
    result = mrr.total([line(4_900, quantity=5), line(5_000)], "EUR")

    assert result.money.amount == 4_900 * 5 + 5_000


def test_decimal_unit_amounts_are_kept_exact():
    result = mrr.total([line(Decimal("0.5"), quantity=3_001)], "eur")

    assert result.money.amount == 1_500  # 1500.5 rounds half-even to 1500


def test_percent_discount_reduces_mrr():
    result = mrr.total([line(4_900, quantity=5)], "eur", [mrr.Discount(percent_off=20)], AT)

    assert result.money.amount == 19_600


def test_amount_discount_is_per_billing_period_and_normalized_like_the_price():
    yearly = [line(118_800, "year")]

    result = mrr.total(yearly, "eur", [mrr.Discount(amount_off=12_000, currency="EUR")], AT)

    assert result.money.amount == 9_900 - 1_000


def test_discounts_stack_in_order_and_never_go_below_zero():
    discounts = [mrr.Discount(percent_off=50), mrr.Discount(amount_off=1_000)]
    assert mrr.total([line(4_000)], "eur", discounts, AT).money.amount == 1_000

    huge = [mrr.Discount(amount_off=10_000)]
    assert mrr.total([line(4_000)], "eur", huge, AT).money.amount == 0


def test_only_a_currently_applying_coupon_reduces_mrr():
    ended = mrr.Discount(percent_off=50, end=datetime(2026, 3, 1, tzinfo=UTC))
    running = mrr.Discount(percent_off=50, end=datetime(2026, 6, 1, tzinfo=UTC))
    forever = mrr.Discount(percent_off=50, end=None)

    assert mrr.total([line(4_000)], "eur", [ended], AT).money.amount == 4_000
    assert mrr.total([line(4_000)], "eur", [running], AT).money.amount == 2_000
    assert mrr.total([line(4_000)], "eur", [forever], AT).money.amount == 2_000


def test_an_amount_discount_in_another_currency_is_noted_not_applied():
    discount = mrr.Discount(amount_off=500, currency="usd", label="di_1")

    result = mrr.total([line(4_000)], "eur", [discount], AT)

    assert result.money.amount == 4_000
    assert result.notes == ("di_1: other currency, not applied",)


def test_metered_or_tiered_line_counts_as_zero_and_is_noted():
    result = mrr.total([line(4_900), line(None)], "eur")

    assert result.money.amount == 4_900
    assert result.notes == ("price_x: no unit amount (metered or tiered), 0",)


def test_lines_in_two_currencies_are_never_summed():
    with pytest.raises(InvalidPayload):
        mrr.total([line(4_900, currency="eur"), line(4_900, currency="usd")], "eur")
    with pytest.raises(InvalidPayload):
        mrr.add(Money(amount=1, currency="EUR"), Money(amount=1, currency="USD"))
    assert mrr.add(Money(amount=1, currency="EUR"), Money(amount=2, currency="EUR")).amount == 3


def test_no_lines_is_zero_in_the_currency_upper_cased():
    assert mrr.total([], "gbp").money == Money(amount=0, currency="GBP")


@pytest.mark.parametrize(("interval", "count"), [("fortnight", 1), ("month", 0)])
def test_unknown_interval_or_count_is_invalid(interval, count):
    with pytest.raises(InvalidPayload):
        mrr.monthly(100, interval, count)


def test_negative_quantity_is_invalid():
    with pytest.raises(InvalidPayload):
        mrr.total([line(100, quantity=-1)], "eur")


def _reference(lines, discounts, at):
    """The rule as nps_sync.core.mrr states it, one Fraction step at a time."""
    amount = Fraction(0)
    for one in lines:
        if one.unit_amount is not None:
            per_month = mrr.PER_MONTH[one.interval] / one.interval_count
            amount += Fraction(one.unit_amount) * one.quantity * per_month
    first = lines[0]
    for discount in discounts:
        if discount.end is not None and discount.end <= at:
            continue
        if discount.percent_off is not None:
            amount -= amount * Fraction(discount.percent_off) / 100
        if discount.amount_off is not None:
            amount -= discount.amount_off * mrr.PER_MONTH[first.interval] / first.interval_count
    return round(max(amount, Fraction(0)))


amounts = st.one_of(
    st.integers(0, 10**9),
    st.decimals(0, 10**6, places=4, allow_nan=False, allow_infinity=False),
    st.none(),
)
lines_ = st.lists(
    st.builds(
        mrr.Line,
        unit_amount=amounts,
        currency=st.just("eur"),
        interval=st.sampled_from(sorted(mrr.PER_MONTH)),
        interval_count=st.integers(1, 1000),
        quantity=st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=5,
)
discounts_ = st.lists(
    st.builds(
        mrr.Discount,
        percent_off=st.one_of(st.none(), st.decimals(0, 100, places=3, allow_nan=False)),
        amount_off=st.one_of(st.none(), st.integers(0, 10**7)),
        currency=st.just("EUR"),
        end=st.sampled_from(
            [None, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
        ),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(lines_, discounts_)
def test_the_total_is_the_rule_computed_exactly_with_one_rounding(lines, discounts):
    assert mrr.total(lines, "EUR", discounts, AT).money.amount == _reference(lines, discounts, AT)
